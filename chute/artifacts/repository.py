"""The artifact repository: where output artifacts go and input artifacts come from.

:class:`ArtifactRepository` wraps one backend (a local directory or an S3 bucket) and
speaks in artifacts: :meth:`~ArtifactRepository.save` packs a step's output path as Argo
does and returns an :class:`ArtifactRecord` (key, size, sha256 digest) for the metadata
store; :meth:`~ArtifactRepository.load` puts a stored artifact back at an input path,
unpacking safely. Lower-level object calls (``put_file``, ``get_file``, ``open``,
``exists``, ``size``, ``list``, ``delete``) serve the server and garbage collection.

Which repository: :meth:`ArtifactRepository.from_settings` reads
``$CHUTE_HOME/artifact-repository.yaml`` when it exists, in the shape of one entry of
Argo's ``artifact-repositories`` ConfigMap (an ``s3:`` block as ``S3ArtifactRepository``
describes, see :mod:`chute.artifacts.s3`); otherwise the local directory
``Settings.artifacts_dir``. For example, a MinIO on this machine, with its keys stored by
``chute secret create minio --from-literal accessKey=... --from-literal secretKey=...``::

    s3:
      endpoint: 127.0.0.1:9000
      insecure: true
      bucket: ml-artifacts
      keyPrefix: chute
      accessKeySecret: {name: minio, key: accessKey}
      secretKeySecret: {name: minio, key: secretKey}

or another directory: ``local: {path: /data/chute-artifacts}``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

import yaml

from chute.artifacts.archive import (
    UnsafeArchiveError,
    extract_tar,
    extract_zip,
    pack_tar,
    pack_zip,
    sniff,
)
from chute.artifacts.digest import HashingWriter, copy_stream, file_digest, format_digest
from chute.artifacts.keys import artifact_key, safe_key
from chute.artifacts.local import LocalBackend
from chute.errors import NotFoundError, UserError

CONFIG_FILE = "artifact-repository.yaml"


@dataclass(frozen=True)
class ArtifactRecord:
    """One stored artifact, as the metadata store keeps it.

    ``digest`` is the sha256 of the stored bytes (for a directory stored as is, of its
    sorted ``sha256  path`` manifest), so equal content gives equal digests and cache keys.
    """

    name: str
    key: str
    repository: str  # URI of the repository root, without credentials
    archive: str  # "tgz", "zip" or "none"
    is_dir: bool
    size: int  # bytes stored
    digest: str  # "sha256:<hex>"
    filename: str  # base name of the source path (previews, content type)
    workflow_uid: str | None = None
    node_id: str | None = None
    path: str | None = None  # the path in the step that produced it

    @property
    def uri(self) -> str:
        """Full location: repository URI and key."""
        return f"{self.repository}/{self.key}"

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ArtifactRecord:
        """Inverse of :meth:`to_dict` (unknown fields are ignored)."""
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in names})


def archive_format(archive: Any, where: str = "archive") -> tuple[str, int | None]:
    """Argo's ``archive`` strategy as ``(format, gzip level)``; tar+gzip when absent."""
    if archive is None:
        return "tgz", None
    if hasattr(archive, "model_dump"):
        archive = archive.model_dump(by_alias=True, exclude_none=True)
    archive = dict(archive or {})
    if not archive:
        return "tgz", None
    if len(archive) > 1:
        raise UserError(f"{where}: give one of none, tar, zip")
    (kind, opts), = archive.items()
    if kind == "none":
        return "none", None
    if kind == "tar":
        level = (opts or {}).get("compressionLevel")
        return "tgz", None if level is None else int(level)
    if kind == "zip":
        return "zip", None
    raise UserError(f"{where}.{kind}: unknown archive strategy")


def tree_digest(root: Path) -> tuple[str, int]:
    """Digest and total size of a directory: sha256 over its sorted file manifest."""
    manifest = hashlib.sha256()
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath, name)
            if p.is_symlink() or not p.is_file():
                continue
            d, n = file_digest(p)
            total += n
            manifest.update(f"{d[7:]}  {p.relative_to(root).as_posix()}\n".encode())
    return format_digest(manifest.hexdigest()), total


class ArtifactRepository:
    """Stores and fetches artifacts in one backend (local directory or S3 bucket)."""

    def __init__(self, backend):
        self.backend = backend

    # ------------------------------------------------------------------ construction
    @classmethod
    def local(cls, root: Path | str | None = None) -> ArtifactRepository:
        """A repository in the directory ``root`` (default ``Settings.artifacts_dir``)."""
        if root is None:
            from chute.config import load_settings

            root = load_settings().artifacts_dir
        Path(root).mkdir(parents=True, exist_ok=True)
        return cls(LocalBackend(root))

    @classmethod
    def from_argo(cls, config: Mapping[str, Any], secrets=None,
                  where: str = "artifactRepository") -> ArtifactRepository:
        """From an Argo ``ArtifactRepository`` mapping (``{s3: {...}}``) or chute's
        ``{local: {path: ...}}``; credentials are resolved from ``secrets``."""
        from chute.artifacts.s3 import S3Backend, S3Config

        config = dict(config or {})
        config.pop("archiveLogs", None)
        if set(config) == {"s3"}:
            return cls(S3Backend(S3Config.from_argo(config["s3"], f"{where}.s3"), secrets))
        if set(config) == {"local"}:
            return cls.local(Path(str((config["local"] or {}).get("path", ""))).expanduser())
        kinds = ", ".join(sorted(config)) or "nothing"
        raise UserError(f"{where}: give one of s3 or local (got {kinds}); "
                        "gcs, azure, oss, hdfs and artifactory are not supported locally")

    @classmethod
    def from_settings(cls, settings=None, secrets=None) -> ArtifactRepository:
        """The configured default repository (see the module docstring)."""
        from chute.config import load_settings

        settings = settings or load_settings()
        path = settings.home / CONFIG_FILE
        if not path.exists():
            return cls.local(settings.artifacts_dir)
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise UserError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
        if not isinstance(doc, Mapping):
            raise UserError(f"{path}: expected a mapping with an 's3' or 'local' block")
        return cls.from_argo(doc, secrets, where=str(path))

    @property
    def uri(self) -> str:
        """The repository root as a URI, without credentials."""
        return self.backend.uri

    @property
    def s3_config(self):
        """The S3 configuration, or None for a local repository."""
        return getattr(self.backend, "cfg", None)

    # ------------------------------------------------------------------ objects
    def put_file(self, src: Path | str, key: str) -> tuple[str, int]:
        """Store one file at ``key`` atomically; return ``(digest, size)``."""
        with open(src, "rb") as f, self.backend.writer(safe_key(key)) as w:
            hw = HashingWriter(w)
            copy_stream(f, hw)
        return hw.digest, hw.size

    def put_stream(self, src: BinaryIO, key: str) -> tuple[str, int]:
        """Store what ``src`` yields at ``key`` atomically; return ``(digest, size)``."""
        with self.backend.writer(safe_key(key)) as w:
            hw = HashingWriter(w)
            copy_stream(src, hw)
        return hw.digest, hw.size

    def get_file(self, key: str, dest: Path | str) -> None:
        """Copy the object at ``key`` to ``dest`` (replaced atomically)."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".chute-get-{uuid.uuid4().hex}"
        try:
            self.backend.get_file(safe_key(key), tmp)
            os.replace(tmp, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    @contextlib.contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        """The object at ``key`` as a stream; NotFoundError names the key."""
        with self.backend.reader(safe_key(key)) as r:
            yield r

    def exists(self, key: str) -> bool:
        """Whether an object, or objects under the prefix, exist at ``key``."""
        return self.backend.info(safe_key(key)) is not None

    def size(self, key: str) -> int:
        """Bytes stored at ``key`` (summed under a prefix); NotFoundError if none."""
        info = self.backend.info(safe_key(key))
        if info is None:
            raise NotFoundError(f"artifact not found: {self.backend.describe(key)}")
        return info[0]

    def list(self, prefix: str = "") -> list[tuple[str, int]]:
        """``(key, size)`` of every object under ``prefix``."""
        return list(self.backend.list(safe_key(prefix) if prefix else ""))

    def delete(self, prefix: str) -> tuple[int, int]:
        """Delete the object or prefix ``prefix``; return ``(objects, bytes)`` removed."""
        return self.backend.delete(safe_key(prefix))

    # ------------------------------------------------------------------ artifacts
    def save(self, src: Path | str, *, name: str, workflow_uid: str | None = None,
             node_id: str | None = None, archive: Any = None, key: str | None = None,
             step_path: str | None = None, link: bool = True,
             root: Path | str | None = None) -> ArtifactRecord:
        """Store the file or directory ``src`` as output artifact ``name``.

        The key is ``key`` when the spec names one (``s3: {key: ...}``), else the default
        ``{workflow_uid}/{node_id}/{name}...``. ``archive`` is Argo's strategy (mapping or
        model). With ``link`` (the default) a local repository hard-links or reflinks files
        stored as is instead of copying them. Raises NotFoundError if ``src`` is missing.
        A symlink at ``src`` is followed only when its real path stays inside ``root``
        (the step's filesystem view), so a step cannot export host files through a link;
        symlinks inside a directory are kept as links (tar) or skipped (as is).
        """
        src = Path(src)
        label = step_path or str(src)
        if not src.exists() and not src.is_symlink():
            raise NotFoundError(f"output artifact {name!r}: {label} was not produced")
        if src.is_symlink():
            real = os.path.realpath(src)
            base = os.path.realpath(root) if root is not None else None
            if base is None or not real.startswith(base + os.sep) or not os.path.exists(real):
                raise UserError(f"output artifact {name!r}: {label} is a symlink leading "
                                "outside the step's files; chute does not follow it")
            src = Path(real)
        fmt, level = archive_format(archive, f"outputs.artifacts[{name}].archive")
        is_dir = src.is_dir()
        filename = src.name or name
        if key is not None:
            key = safe_key(key, f"outputs.artifacts[{name}].s3.key")
        else:
            if not workflow_uid or not node_id:
                raise UserError(f"output artifact {name!r}: needs a key or workflow uid + node id")
            key = artifact_key(workflow_uid, node_id, name, fmt,
                               None if fmt != "none" or is_dir else filename)
        if fmt in ("tgz", "zip"):
            with self.backend.writer(key) as w:
                hw = HashingWriter(w)
                pack_tar(src, hw, level) if fmt == "tgz" else pack_zip(src, hw)
            digest, size = hw.digest, hw.size
        elif is_dir:
            self.backend.put_tree(src, key, link=link)
            digest, size = tree_digest(src)
        elif isinstance(self.backend, LocalBackend) and link:
            digest, size = file_digest(src)
            self.backend.put_file(src, key, link=True)
        else:
            digest, size = self.put_file(src, key)
        return ArtifactRecord(name=name, key=key, repository=self.uri, archive=fmt,
                              is_dir=is_dir, size=size, digest=digest, filename=filename,
                              workflow_uid=workflow_uid, node_id=node_id, path=step_path)

    def load(self, source: ArtifactRecord | str, dest: Path | str, *, archive: Any = None,
             sub_path: str | None = None, where: str = "input artifact") -> None:
        """Place a stored artifact (a record, or a bare key) at the new path ``dest``.

        Archives are unpacked safely (:mod:`chute.artifacts.archive`); an archive with one
        top-level entry puts that entry at ``dest``, as Argo does. For a bare key the format
        is found from the object: a prefix is a directory, a gzip object is unpacked, a zip
        only when ``archive`` says zip, and ``archive: none`` keeps the bytes as they are.
        ``sub_path`` (Argo's ``subPath``) picks a path inside the artifact.
        """
        dest = Path(dest)
        if isinstance(source, ArtifactRecord):
            key, fmt, is_dir = source.key, source.archive, source.is_dir
        else:
            key = safe_key(source, where)
            info = self.backend.info(key)
            if info is None:
                raise NotFoundError(f"{where}: artifact not found: {self.backend.describe(key)}")
            is_dir = info[1]
            want, _ = archive_format(archive, f"{where}.archive") if archive else ("", None)
            if is_dir or archive and want == "none":
                fmt = "none"
            else:
                with self.backend.reader(key) as r:
                    fmt = sniff(r.read(4))
                if fmt == "zip" and want != "zip":
                    fmt = "none"
        staging = _staging_dir(dest)
        try:
            if fmt == "tgz" and isinstance(self.backend, LocalBackend):
                with self.backend.reader(key) as r:
                    extract_tar(r, staging)
            elif fmt == "tgz":
                # One streaming GET to local disk, then unpack: ranged reads of a remote
                # object cost a request each (and moto copies the whole object per range).
                tmp = staging.parent / f"{staging.name}.tgz"
                try:
                    self.backend.get_file(key, tmp)
                    with open(tmp, "rb") as r:
                        extract_tar(r, staging)
                finally:
                    with contextlib.suppress(FileNotFoundError):
                        tmp.unlink()
            elif fmt == "zip":
                tmp = staging.parent / f"{staging.name}.zip"
                try:
                    self.backend.get_file(key, tmp)
                    extract_zip(tmp, staging)
                finally:
                    with contextlib.suppress(FileNotFoundError):
                        tmp.unlink()
            elif is_dir:
                self._load_tree(key, staging / "artifact")
            else:
                self.backend.get_file(key, staging / "artifact")
            _place(staging, dest, sub_path, where)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _load_tree(self, key: str, out: Path) -> None:
        from chute.artifacts.archive import _member_name

        out.mkdir()
        found = list(self.backend.list(key))
        if not found:
            raise NotFoundError(f"artifact not found: {self.backend.describe(key)}")
        for k, _ in found:
            rel = _member_name(k[len(key):].lstrip("/"))
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if os.path.realpath(target.parent) != os.path.join(os.path.realpath(out),
                                                                *rel.split("/")[:-1]):
                raise UserError(f"artifact {key!r}: object {k!r} would land outside its root")
            self.backend.get_file(k, target)


def _staging_dir(dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    d = dest.parent / f".chute-in-{uuid.uuid4().hex}"
    d.mkdir(mode=0o700)
    return d


def _place(staging: Path, dest: Path, sub_path: str | None, where: str) -> None:
    """Move what was unpacked into ``staging`` to ``dest`` (Argo's single-entry rule)."""
    entries = [p for p in staging.iterdir()]
    src = entries[0] if len(entries) == 1 else staging
    if sub_path:
        sub = safe_key(sub_path, f"{where}.subPath")
        candidate = src / sub
        real_src = os.path.realpath(src)
        real = os.path.realpath(candidate)
        if not (real == real_src or real.startswith(real_src + os.sep)):
            raise UserError(f"{where}.subPath: {sub_path!r} leaves the artifact")
        if not candidate.exists() and not candidate.is_symlink():
            raise NotFoundError(f"{where}.subPath: {sub_path!r} is not in the artifact")
        src = candidate
    if src.is_symlink():
        # Moved out of its tree, a relative link would point somewhere else.
        raise UnsafeArchiveError(f"{where}: the artifact (or its subPath) is a symlink")
    if dest.is_symlink() or (dest.exists() and not (dest.is_dir() and not any(dest.iterdir()))):
        raise UserError(f"{where}: {dest} already exists")
    if dest.is_dir():
        dest.rmdir()
    if src == staging:
        # Several top-level entries: dest becomes the directory holding them.
        fresh = staging.parent / f".chute-dir-{uuid.uuid4().hex}"
        fresh.mkdir()
        for e in entries:
            os.rename(e, fresh / e.name)
        os.rename(fresh, dest)
    else:
        os.rename(src, dest)
