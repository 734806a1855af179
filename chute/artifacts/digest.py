"""Content digests computed while bytes stream past, never by reading a whole file."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20  # 1 MiB: large enough for throughput, small enough for a flat RSS


def format_digest(hexdigest: str) -> str:
    """``sha256:<hex>``, the form stored in records and cache keys."""
    return f"sha256:{hexdigest}"


def parse_checksum(text: str) -> str:
    """Accept ``sha256:<hex>`` or ``sha256=<hex>`` (or a bare 64-hex) and return the hex."""
    t = text.strip().lower()
    for sep in (":", "="):
        if t.startswith("sha256" + sep):
            t = t[7:]
    if len(t) != 64 or any(c not in "0123456789abcdef" for c in t):
        from chute.errors import UserError

        raise UserError(f"checksum {text!r} is not a sha256 digest (sha256:<64 hex digits>)")
    return t


class HashingWriter:
    """A write-only file object that hashes and counts what passes to ``inner``."""

    def __init__(self, inner: BinaryIO | None):
        self.inner = inner
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        """Hash, count and forward ``data``."""
        self.sha.update(data)
        self.size += len(data)
        if self.inner is not None:
            self.inner.write(data)
        return len(data)

    def flush(self) -> None:
        """Flush the inner file object."""
        if self.inner is not None and hasattr(self.inner, "flush"):
            self.inner.flush()

    @property
    def digest(self) -> str:
        """The digest of everything written so far."""
        return format_digest(self.sha.hexdigest())


class HashingReader:
    """A read-only file object that hashes and counts what is read from ``inner``."""

    def __init__(self, inner: BinaryIO):
        self.inner = inner
        self.sha = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        """Read from ``inner``, hashing and counting the bytes."""
        data = self.inner.read(n)
        self.sha.update(data)
        self.size += len(data)
        return data

    @property
    def digest(self) -> str:
        """The digest of everything read so far."""
        return format_digest(self.sha.hexdigest())


def copy_stream(src: BinaryIO, dst, chunk: int = CHUNK) -> int:
    """Copy ``src`` to ``dst`` in chunks; return the number of bytes copied."""
    total = 0
    while True:
        data = src.read(chunk)
        if not data:
            return total
        dst.write(data)
        total += len(data)


def file_digest(path: Path | str) -> tuple[str, int]:
    """``(digest, size)`` of a file, read in chunks."""
    w = HashingWriter(None)
    with open(path, "rb") as f:
        copy_stream(f, w)
    return w.digest, w.size
