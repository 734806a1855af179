"""Small, bounded previews of stored artifacts for the UI.

:func:`preview` reads at most ``max_bytes`` of an artifact (streaming through a ``.tgz`` to
its first file) and says what it is: ``csv`` (header and first rows), ``json`` (pretty,
when the whole document fits), ``text`` (the head), ``image`` (PNG/JPEG/GIF/WebP bytes
and MIME type, by magic number, only when the whole image fits), ``directory`` (the first
file names) or ``binary`` (a hex head). SVG and HTML are previewed as text, never as
renderable content.
"""

from __future__ import annotations

import csv
import io
import json
import tarfile
from dataclasses import dataclass
from typing import Any

from chute.artifacts.repository import ArtifactRecord, ArtifactRepository

MAX_ROWS = 20
IMAGE_MAGIC = [(b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
               (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif")]


@dataclass(frozen=True)
class Preview:
    """What the UI shows for an artifact."""

    kind: str  # csv, json, text, image, directory or binary
    payload: Any  # csv: {"columns", "rows"}; json/text: str; image: bytes; directory: [names]
    mime: str = "text/plain"
    truncated: bool = False
    filename: str = ""


def _head(stream, limit: int) -> tuple[bytes, bool]:
    data = stream.read(limit + 1)
    return data[:limit], len(data) > limit


def _image_mime(data: bytes) -> str | None:
    for magic, mime in IMAGE_MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def classify(data: bytes, truncated: bool, filename: str, max_rows: int = MAX_ROWS,
             max_bytes: int = 64 * 1024) -> Preview:
    """Build a preview from the first bytes of a file named ``filename``."""
    mime = _image_mime(data)
    if mime:
        if truncated:
            return Preview("binary", data[:256].hex(), "application/octet-stream", True, filename)
        return Preview("image", data, mime, False, filename)
    if b"\x00" in data[:8192]:
        return Preview("binary", data[:256].hex(), "application/octet-stream", truncated,
                       filename)
    text = data.decode("utf-8", errors="replace")
    if truncated and "\ufffd" in text[-4:]:
        text = text.rstrip("\ufffd")  # a multi-byte character cut at the limit
    lower = filename.lower()
    if lower.endswith((".csv", ".tsv")):
        lines = text.splitlines()
        if truncated and lines:
            lines = lines[:-1]  # the last line may be cut
        delim = "\t" if lower.endswith(".tsv") else ","
        rows = list(csv.reader(io.StringIO("\n".join(lines[: max_rows + 1])), delimiter=delim))
        more = truncated or len(lines) > max_rows + 1
        return Preview("csv", {"columns": rows[0] if rows else [], "rows": rows[1:]},
                       "text/csv", more, filename)
    looks_json = lower.endswith(".json") or text.lstrip()[:1] in ("{", "[")
    if looks_json and not truncated:  # a cut document cannot be parsed: shown as text
        try:
            pretty = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            pretty = None
        if pretty is not None and len(pretty.encode()) <= max_bytes:
            return Preview("json", pretty, "application/json", False, filename)
        if pretty is not None:  # indentation made it too big: show it compact
            return Preview("json", text, "application/json", False, filename)
    return Preview("text", text, "text/plain", truncated, filename)


def preview(repository: ArtifactRepository, record: ArtifactRecord,
            max_bytes: int = 64 * 1024) -> Preview:
    """A bounded preview of ``record`` (reads at most about ``max_bytes`` of content)."""
    if record.archive == "none" and record.is_dir:
        names = [k[len(record.key) + 1:] for k, _ in repository.list(record.key)[:100]]
        return Preview("directory", names, "text/plain", len(names) >= 100, record.filename)
    if record.archive == "tgz":
        with repository.open(record.key) as raw, tarfile.open(fileobj=raw, mode="r|gz") as tar:
            names = []
            for m in tar:
                if m.isreg():
                    if not record.is_dir:
                        f = tar.extractfile(m)
                        data, cut = _head(f, max_bytes)
                        return classify(data, cut, record.filename, max_bytes=max_bytes)
                    names.append(m.name.split("/", 1)[-1])
                if len(names) >= 100:
                    break
            return Preview("directory", names, "text/plain", len(names) >= 100,
                           record.filename)
    if record.archive == "zip":
        return Preview("binary", "", "application/zip", True, record.filename)
    with repository.open(record.key) as raw:
        data, cut = _head(raw, max_bytes)
    return classify(data, cut, record.filename, max_bytes=max_bytes)
