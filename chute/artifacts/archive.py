"""Packing outputs the way Argo does, and unpacking inputs so they cannot escape their root.

Packing streams: :func:`pack_tar` writes a tar+gzip stream (Argo's default ``.tgz``) of a
file or directory into any writable, :func:`pack_zip` a zip. The archive holds one
top-level entry named after the source's base name, as Argo's does, so unpacking puts the
file or directory back at the input's ``path``. The output is reproducible for the same
content (sorted entries, owner 0, mtime 0, gzip header without name or time), so an
unchanged output keeps its digest and downstream cache entries stay valid.

Unpacking (V-3 of RELIABILITY.md; the Argo ZipSlip class, CVE-2025-62156 and
CVE-2025-66626) is chute's own loop, not ``tarfile.extractall``:

- member names must be relative, without ``..``, NUL or backslash;
- every parent of a written path must be a real directory inside the root, never a
  symlink, so a symlink entry followed by a file "through" it is refused;
- files are created with ``O_NOFOLLOW | O_EXCL``;
- symlinks must be relative and point inside the root (checked again with ``realpath``
  once everything is unpacked, so the order of entries cannot fool the check);
- hard links must name a regular file unpacked earlier and are materialised as a copy;
- devices, FIFOs and other special entries are refused;
- set-uid/set-gid/sticky bits are dropped.

Any violation refuses the whole archive (:class:`UnsafeArchiveError`); callers unpack into
a fresh staging directory and delete it on failure, so nothing half-unpacked remains.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from chute.artifacts.digest import CHUNK, copy_stream
from chute.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_GZIP_LEVEL = 6  # Go's gzip.DefaultCompression, which Argo uses
GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"


class UnsafeArchiveError(UserError):
    """An archive entry would escape the extraction root or is of a refused type."""

    code = "unsafe_archive"


# ---------------------------------------------------------------------------- packing


def _walk(src: Path) -> Iterator[tuple[Path, str]]:
    """Yield ``(path, arcname)`` for ``src`` and, for a directory, everything under it,
    sorted, parents first. Symlinked directories are not descended into."""
    base = src.name or "artifact"
    yield src, base
    if src.is_dir() and not src.is_symlink():
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames.sort()
            rel = os.path.relpath(dirpath, src)
            prefix = base if rel == "." else f"{base}/{rel}"
            for name in sorted(dirnames + filenames):
                yield Path(dirpath, name), f"{prefix}/{name}"


def _link_inside(src_root: Path, path: Path, target: str) -> bool:
    if os.path.isabs(target):
        return False
    joined = os.path.normpath(os.path.join(os.path.dirname(path), target))
    root = os.path.normpath(src_root if src_root.is_dir() else src_root.parent)
    return joined == root or joined.startswith(root + os.sep)


def _entries(src: Path) -> Iterator[tuple[str, str, Path, os.stat_result, str]]:
    """Classify what to pack: ``(kind, arcname, path, lstat, linkname)``; skips (with a
    warning) what an input could never unpack: special files, symlinks leaving the tree."""
    for path, arc in _walk(src):
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode):
            yield "dir", arc, path, st, ""
        elif stat.S_ISREG(st.st_mode):
            yield "file", arc, path, st, ""
        elif stat.S_ISLNK(st.st_mode):
            target = os.readlink(path)
            if path != src and _link_inside(src, path, target):
                yield "symlink", arc, path, st, target
            else:
                log.warning("artifact: skipping symlink %s -> %s (leaves the artifact)", arc, target)
        else:
            log.warning("artifact: skipping special file %s", arc)


def pack_tar(src: Path, out: BinaryIO, compression_level: int | None = None) -> None:
    """Write a tar+gzip stream of ``src`` (file or directory) to ``out``."""
    level = DEFAULT_GZIP_LEVEL if compression_level is None or compression_level < 0 else int(
        compression_level)
    if level > 9:
        raise UserError(f"archive.tar.compressionLevel {compression_level} is not in 0..9")
    gz = gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=level, mtime=0)
    with tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for kind, arc, path, st, linkname in _entries(src):
            ti = tarfile.TarInfo(arc)
            ti.mode = stat.S_IMODE(st.st_mode) & 0o777
            ti.mtime = 0
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
                tar.addfile(ti)
            elif kind == "symlink":
                ti.type, ti.linkname = tarfile.SYMTYPE, linkname
                tar.addfile(ti)
            else:
                ti.size = st.st_size
                with open(path, "rb") as f:
                    tar.addfile(ti, f)
    gz.close()


def pack_zip(src: Path, out: BinaryIO) -> None:
    """Write a zip stream of ``src`` to ``out`` (which need not be seekable)."""
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for kind, arc, path, st, linkname in _entries(src):
            zi = zipfile.ZipInfo(arc + ("/" if kind == "dir" else ""), (1980, 1, 1, 0, 0, 0))
            mode = stat.S_IMODE(st.st_mode) & 0o777
            if kind == "dir":
                zi.external_attr = (stat.S_IFDIR | mode) << 16 | 0x10
                zf.writestr(zi, b"")
            elif kind == "symlink":
                zi.external_attr = (stat.S_IFLNK | 0o777) << 16
                zf.writestr(zi, linkname)
            else:
                zi.external_attr = (stat.S_IFREG | mode) << 16
                zi.compress_type = zipfile.ZIP_DEFLATED
                with open(path, "rb") as f, zf.open(zi, "w", force_zip64=True) as w:
                    copy_stream(f, w)


def sniff(head: bytes) -> str:
    """Guess a stored object's format from its first bytes: ``tgz``, ``zip`` or ``none``."""
    if head.startswith(GZIP_MAGIC):
        return "tgz"
    if head.startswith(ZIP_MAGIC):
        return "zip"
    return "none"


# -------------------------------------------------------------------------- unpacking


def _member_name(raw: str) -> str:
    """Validate an archive member name and return it normalised ('' for the root)."""
    if "\x00" in raw:
        raise UnsafeArchiveError(f"archive entry {raw!r} contains a NUL byte")
    if "\\" in raw:
        raise UnsafeArchiveError(f"archive entry {raw!r} contains a backslash")
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":"):
        raise UnsafeArchiveError(f"archive entry {raw!r} is an absolute path")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"archive entry {raw!r} has a '..' segment")
    return "/".join(parts)


class _Extractor:
    """Writes validated entries under ``root``; see the module docstring for the rules."""

    def __init__(self, root: Path):
        self.root = os.path.realpath(root)
        self.files: set[str] = set()  # regular files written, for hard links
        self.links: list[str] = []

    def _inside(self, path: str) -> bool:
        return path == self.root or path.startswith(self.root + os.sep)

    def _parent(self, name: str) -> str:
        """Create the parents of ``name`` as real directories; refuse symlinked ones."""
        cur = self.root
        for part in name.split("/")[:-1]:
            cur = os.path.join(cur, part)
            try:
                st = os.lstat(cur)
            except FileNotFoundError:
                os.mkdir(cur, 0o755)
                continue
            if stat.S_ISLNK(st.st_mode):
                raise UnsafeArchiveError(f"archive entry {name!r} goes through a symlink")
            if not stat.S_ISDIR(st.st_mode):
                raise UnsafeArchiveError(f"archive entry {name!r}: {part!r} is not a directory")
        return os.path.join(self.root, name)

    def _clear(self, path: str, name: str) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeArchiveError(f"archive entry {name!r} overwrites a non-file")
        os.unlink(path)

    def directory(self, name: str, mode: int = 0o755) -> None:
        """Create a directory entry."""
        if not name:
            return
        path = self._parent(name)
        try:
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode):
                raise UnsafeArchiveError(f"archive entry {name!r} overwrites a non-directory")
        except FileNotFoundError:
            os.mkdir(path, 0o755)

    def file(self, name: str, src: BinaryIO, mode: int) -> None:
        """Create a regular file from the stream ``src``."""
        if not name:
            raise UnsafeArchiveError("archive entry with an empty name")
        path = self._parent(name)
        self._clear(path, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            copy_stream(src, out, CHUNK)
        os.chmod(path, (mode & 0o777) | 0o600)
        self.files.add(name)

    def symlink(self, name: str, target: str) -> None:
        """Create a symlink that must stay inside the root."""
        if not name or not target or "\x00" in target:
            raise UnsafeArchiveError(f"archive symlink {name!r} has an empty or bad target")
        if os.path.isabs(target) or "\\" in target:
            raise UnsafeArchiveError(f"archive symlink {name!r} -> {target!r} is absolute")
        lexical = os.path.normpath(os.path.join(self.root, os.path.dirname(name), target))
        if not self._inside(lexical):
            raise UnsafeArchiveError(f"archive symlink {name!r} -> {target!r} leaves the root")
        path = self._parent(name)
        if os.path.lexists(path):
            raise UnsafeArchiveError(f"archive symlink {name!r} replaces an existing entry")
        os.symlink(target, path)
        self.links.append(name)

    def hardlink(self, name: str, target: str) -> None:
        """Materialise a hard link to an earlier regular file as a copy."""
        tname = _member_name(target)
        if tname not in self.files:
            raise UnsafeArchiveError(
                f"archive hard link {name!r} -> {target!r} does not name an earlier file")
        src = os.path.join(self.root, tname)
        if os.path.islink(src) or not self._inside(os.path.realpath(src)):
            raise UnsafeArchiveError(f"archive hard link {name!r} -> {target!r} leaves the root")
        with open(src, "rb") as f:
            self.file(name, f, stat.S_IMODE(os.lstat(src).st_mode))

    def finish(self) -> None:
        """Check every symlink's real target once all entries exist."""
        bad = [n for n in self.links
               if not self._inside(os.path.realpath(os.path.join(self.root, n)))]
        if bad:
            for name in self.links:  # leave no link pointing out, even in a refused tree
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.root, name))
            raise UnsafeArchiveError(f"archive symlink {bad[0]!r} resolves outside the root")


def extract_tar(fileobj: BinaryIO, dest: Path) -> None:
    """Unpack a (gzip-compressed or plain) tar stream into the existing directory ``dest``.

    The stream is read once, front to back, so it may come straight from the network.
    """
    ex = _Extractor(dest)
    try:
        tar = tarfile.open(fileobj=fileobj, mode="r|*")  # noqa: SIM115 - closed below
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UserError(f"artifact is not a readable tar archive: {exc}") from None
    try:
        with tar:
            for m in tar:
                name = _member_name(m.name)
                if m.isdir():
                    ex.directory(name, m.mode)
                elif m.isreg():
                    f = tar.extractfile(m)
                    ex.file(name, f, m.mode)
                elif m.issym():
                    ex.symlink(name, m.linkname)
                elif m.islnk():
                    ex.hardlink(name, m.linkname)
                else:
                    raise UnsafeArchiveError(
                        f"archive entry {m.name!r} is a device, FIFO or other special file")
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise UserError(f"artifact tar archive is corrupt: {exc}") from None
    ex.finish()


def extract_zip(path: Path, dest: Path) -> None:
    """Unpack the zip file at ``path`` into the existing directory ``dest``."""
    ex = _Extractor(dest)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UserError(f"artifact is not a readable zip archive: {exc}") from None
    with zf:
        for zi in zf.infolist():
            name = _member_name(zi.filename)
            mode = zi.external_attr >> 16
            ftype = stat.S_IFMT(mode)
            if zi.is_dir() or ftype == stat.S_IFDIR:
                ex.directory(name, mode or 0o755)
            elif ftype == stat.S_IFLNK:
                target = zf.read(zi).decode("utf-8", "replace")
                ex.symlink(name, target)
            elif ftype in (0, stat.S_IFREG):
                with zf.open(zi) as f:
                    ex.file(name, f, stat.S_IMODE(mode) or 0o644)
            else:
                raise UnsafeArchiveError(
                    f"archive entry {zi.filename!r} is a device, FIFO or other special file")
    ex.finish()
