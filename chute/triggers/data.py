"""Data-arrival triggers: a new file in a directory, or a new object under an S3 prefix,
submits a workflow, once per file version.

As an Argo Events ``file`` (``watchPathConfig``) or S3/MinIO bucket-notification
EventSource with a Sensor trigger::

    apiVersion: chute.dev/v1alpha1
    kind: DataTrigger
    metadata: {name: new-batch}
    spec:
      path: /data/incoming            # a local directory (searched recursively), or
      # s3: {endpoint: minio:9000, bucket: data, keyPrefix: incoming, insecure: true,
      #      accessKeySecret: {name: minio, key: access}, secretKeySecret: {...}}
      pathRegexp: '.*\\.csv$'          # relative paths that count (default: all)
      settleSeconds: 2                # a file must be unchanged this long (default 2)
      pollSeconds: 10                 # how often to look (default 10, at least 1)
      workflowTemplateRef: {name: ingest}
      parameters:
      - {name: file, src: {dataKey: body.path}}

The event is ``{"body": {"path", "name", "url", "size", "mtime"}}``: ``path`` relative to
the watched place, ``url`` absolute (``s3://bucket/key`` or the file's path). Files that
were there before the trigger was created do not count. The trigger remembers the newest
modification time it handled; a file version (path, size, mtime) is submitted under the
key ``data:<trigger>:<digest of path, size, mtime>``, so one version makes one run, also
when the controller restarts half-way or a second scheduler looks at the same moment.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from chute.errors import Issue, SpecError, UserError
from chute.triggers import target as T

LABEL = "chute.dev/data-trigger"
MAX_FILES = 10_000  # files handled per poll, oldest first; the rest wait for the next


class DataTriggerSpec(T.TargetSpec):
    """Where to watch, which files count, and what to run."""

    path: str | None = None
    s3: dict[str, Any] | None = None
    pathRegexp: str | None = Field(None, max_length=1000)
    settleSeconds: float = Field(2.0, ge=0, le=3600)
    pollSeconds: float = Field(10.0, ge=1, le=86400)


class DataTrigger(T.Strict):
    """A data-arrival trigger resource."""

    apiVersion: Literal["chute.dev/v1alpha1"]
    kind: Literal["DataTrigger"]
    metadata: T.Meta
    spec: DataTriggerSpec


@dataclass(frozen=True)
class Arrival:
    """One file version seen under the watched place."""

    path: str
    url: str
    size: int
    mtime: float

    def key(self, trigger: str) -> str:
        """The idempotency key of this file version."""
        ident = f"{self.path}\0{self.size}\0{self.mtime!r}".encode()
        return f"data:{trigger}:{hashlib.sha256(ident).hexdigest()[:40]}"

    def event(self) -> dict[str, Any]:
        """The event its parameters are taken from."""
        return {"body": {"path": self.path, "name": self.path.rsplit("/", 1)[-1],
                         "url": self.url, "size": self.size, "mtime": self.mtime}}


def parse(doc: Any, source: str | None = None) -> DataTrigger:
    """A DataTrigger from parsed YAML/JSON, or SpecError naming each bad field."""
    res: DataTrigger = T.parse_model(DataTrigger, doc, source)
    spec = res.spec
    if (spec.path is None) == (spec.s3 is None):
        raise SpecError(Issue("spec", "give exactly one of path or s3"), source)
    if spec.path is not None and not os.path.isabs(spec.path):
        raise SpecError(Issue("spec.path", f"{spec.path!r}: expected an absolute path"), source)
    if spec.pathRegexp:
        try:
            re.compile(spec.pathRegexp)
        except re.error as exc:
            raise SpecError(Issue("spec.pathRegexp", f"invalid regular expression: {exc}"),
                            source) from None
    if spec.s3 is not None:
        _s3_config(spec)  # names a bad field now, not at the first poll
    return res


def _s3_config(spec: DataTriggerSpec):
    from chute.artifacts.s3 import S3Config

    return S3Config.from_argo(spec.s3 or {}, "spec.s3")


def _local(root: str) -> list[Arrival]:
    base = Path(root)
    if not base.is_dir():
        raise UserError(f"spec.path: {root!r} is not a directory")
    out = []
    for dirpath, _dirs, files in os.walk(base):
        for f in files:
            full = Path(dirpath) / f
            try:
                st = full.stat()
            except OSError:
                continue  # removed while we looked
            out.append(Arrival(full.relative_to(base).as_posix(), str(full), st.st_size,
                               st.st_mtime))
    return out


def _s3(spec: DataTriggerSpec, secrets) -> list[Arrival]:
    from chute.artifacts.s3 import S3Backend

    cfg = _s3_config(spec)
    backend = S3Backend(cfg, secrets)
    base = "/".join(p for p in (cfg.bucket, cfg.key_prefix) if p)
    found = backend.fs.find(base, detail=True)
    out = []
    for name, info in found.items():
        if info.get("type") == "directory":
            continue
        when = info.get("LastModified") or info.get("mtime")
        stamp = when.timestamp() if hasattr(when, "timestamp") else float(when or 0)
        rel = name[len(base) + 1:] if name.startswith(base + "/") else name
        out.append(Arrival(rel, f"s3://{name}", int(info.get("size") or 0), stamp))
    return out


def arrivals(trigger: DataTrigger, after: float, now: float, secrets=None) -> list[Arrival]:
    """File versions modified at or after ``after`` and settled by ``now``, that match
    ``pathRegexp``, oldest first."""
    spec = trigger.spec
    found = _local(spec.path) if spec.path is not None else _s3(spec, secrets)
    pattern = re.compile(spec.pathRegexp) if spec.pathRegexp else None
    keep = [a for a in found if a.mtime >= after and a.mtime <= now - spec.settleSeconds
            and (pattern is None or pattern.fullmatch(a.path))]
    return sorted(keep, key=lambda a: (a.mtime, a.path))[:MAX_FILES]
