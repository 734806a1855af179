"""The local-directory backend: keys are files under a root, written by rename.

Writes go to ``<root>/.staging/`` (same filesystem) and are renamed into place, so a
reader sees no object or the complete one, even if the writer is killed (L-3). A file
stored as is (``archive: none``) is reflinked or hard-linked from the step's output
instead of copied where the filesystem allows (issue 8 item 3); copies out of the store
are reflinks or real copies, never hard links, so a step that edits its input cannot
change the stored artifact.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from chute.artifacts.keys import resolve_under, safe_key
from chute.errors import NotFoundError

STAGING = ".staging"
FICLONE = 0x40049409  # linux/fs.h: share extents copy-on-write (btrfs, xfs, ...)


def reflink(src: Path | str, dst: Path | str) -> bool:
    """Make ``dst`` a copy-on-write clone of ``src``; False where unsupported."""
    try:
        with open(src, "rb") as s, open(dst, "wb") as d:
            fcntl.ioctl(d.fileno(), FICLONE, s.fileno())
        return True
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(dst)
        return False


def clone_or_copy(src: Path | str, dst: Path | str, hardlink: bool) -> str:
    """Place ``src`` at the new path ``dst`` the cheapest safe way; return how."""
    if reflink(src, dst):
        return "reflink"
    if hardlink:
        try:
            os.link(src, dst)
            return "hardlink"
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
    shutil.copyfile(src, dst)  # sendfile/copy_file_range on Linux: no user-space buffer
    return "copy"


class LocalBackend:
    """Artifacts as files under ``root``."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.uri = self.root.resolve().as_uri()

    def describe(self, key: str = "") -> str:
        """Where ``key`` lives, for messages."""
        return f"{self.uri}/{key}" if key else self.uri

    def _path(self, key: str) -> Path:
        return resolve_under(self.root, key)

    def _staging(self) -> Path:
        d = self.root / STAGING
        d.mkdir(parents=True, exist_ok=True)
        return d / uuid.uuid4().hex

    def _commit(self, tmp: Path, key: str) -> None:
        final = self._path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.is_dir() and not final.is_symlink():
            old = self._staging()
            os.rename(final, old)  # make room, then drop the old tree
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(final.parent)

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        """A file to write ``key`` into; it appears, complete, when the block exits cleanly."""
        self._path(key)
        tmp = self._staging()
        try:
            with open(tmp, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            self._commit(tmp, key)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def put_file(self, src: Path, key: str, link: bool = False) -> str:
        """Store the file ``src`` at ``key``; with ``link`` it may be reflinked or hard-linked."""
        self._path(key)
        tmp = self._staging()
        try:
            how = clone_or_copy(src, tmp, hardlink=link)
            if how == "copy":
                with open(tmp, "rb+") as f:
                    os.fsync(f.fileno())
            self._commit(tmp, key)
            return how
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def put_tree(self, src: Path, key: str, link: bool = False) -> None:
        """Store the directory ``src`` under ``key`` (one object per file), atomically."""
        self._path(key)
        tmp = self._staging()
        try:
            tmp.mkdir()
            for dirpath, dirnames, filenames in os.walk(src):
                rel = os.path.relpath(dirpath, src)
                out = tmp if rel == "." else tmp / rel
                out.mkdir(exist_ok=True)
                for name in filenames:
                    s = Path(dirpath, name)
                    if s.is_file() and not s.is_symlink():
                        clone_or_copy(s, out / name, hardlink=link)
            self._commit(tmp, key)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    @contextlib.contextmanager
    def reader(self, key: str) -> Iterator[BinaryIO]:
        """The object at ``key`` opened for reading; NotFoundError names the key."""
        path = self._path(key)
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed by the with below
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFoundError(f"artifact not found: {self.describe(key)}") from None
        with f:
            yield f

    def get_file(self, key: str, dest: Path, link: bool = False) -> str:
        """Copy the object at ``key`` to the new path ``dest`` (reflink where possible)."""
        path = self._path(key)
        if not path.is_file():
            raise NotFoundError(f"artifact not found: {self.describe(key)}")
        return clone_or_copy(path, dest, hardlink=link)

    def info(self, key: str) -> tuple[int, bool] | None:
        """``(size, is_dir)`` of ``key``, or None if nothing is stored there."""
        path = self._path(key)
        if path.is_file():
            return path.stat().st_size, False
        if path.is_dir() and not self._is_staging(path):
            return sum(s for _, s in self.list(key)), True
        return None

    def _is_staging(self, path: Path) -> bool:
        return path.resolve().parts[: len(self.root.resolve().parts) + 1] == (
            self.root / STAGING).resolve().parts

    def list(self, prefix: str = "") -> Iterator[tuple[str, int]]:
        """``(key, size)`` of every object under ``prefix``, sorted."""
        base = self._path(prefix) if prefix else self.root.resolve()
        if base.is_file():
            yield safe_key(prefix), base.stat().st_size
            return
        root = self.root.resolve()
        for dirpath, dirnames, filenames in os.walk(base):
            if Path(dirpath) == root:
                dirnames[:] = [d for d in dirnames if d != STAGING]
            dirnames.sort()
            for name in sorted(filenames):
                p = Path(dirpath, name)
                yield p.relative_to(root).as_posix(), p.lstat().st_size

    def delete(self, prefix: str) -> tuple[int, int]:
        """Remove the object or every object under ``prefix``; ``(count, bytes)``."""
        found = list(self.list(prefix))
        path = self._path(prefix)
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        return len(found), sum(s for _, s in found)

    def clean_staging(self, older_than: float = 3600.0) -> int:
        """Remove staging leftovers of killed writers older than ``older_than`` seconds."""
        d = self.root / STAGING
        n = 0
        if d.is_dir():
            for p in d.iterdir():
                if time.time() - p.lstat().st_mtime > older_than:
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
                    n += 1
        return n


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


