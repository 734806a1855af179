"""Which directories had entries made in them: inotify, for a reused worker's ``/tmp``.

:class:`chute.executors.worker_tmp.PrivateTmp` empties a step's ``/tmp`` after it; a
step that made nothing there should cost no directory listing, so the scratch and the
kept chain's directories are watched for entries made (``IN_CREATE``, ``IN_MOVED_TO``)
and only those that had one are listed. One instance serves a worker for its life:
watches are added and removed, never the instance closed, as closing one waits for an
SRCU grace period in the kernel (``fsnotify_destroy_group``: 2-15 ms measured), where
``inotify_rm_watch`` does not wait.
"""

from __future__ import annotations

import os
import struct

from chute.executors import mounts

_EVENT = struct.Struct("iIII")  # struct inotify_event, less its name


class DirWatch:
    """Which directories had entries made in them since the last look (inotify; where it
    is missing: any may have). One for a process's life: see the module docstring."""

    # creations only: what the worker moves out of the scratch makes no event for the
    # next look; an entry can leave a watched directory only into a watched one, or into
    # one made in a watched one (a rename to another mount fails)
    MASK = 0x100 | 0x80  # IN_CREATE | IN_MOVED_TO
    # any change of the entries or the directory itself (IN_ATTRIB | IN_MOVED_FROM |
    # IN_DELETE, besides): for directories the worker made that a step should not touch
    ANY = MASK | 0x4 | 0x40 | 0x200
    IN_Q_OVERFLOW = 0x4000

    def __init__(self) -> None:
        self.libc = mounts.libc()
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)

    def add(self, path: str, mask: int = MASK) -> int:
        """Watch ``path`` for entries made (``mask``: :data:`ANY` for any change): its
        watch descriptor (-1: not watched, it always counts as changed)."""
        if self.fd < 0:
            return -1
        return max(self.libc.inotify_add_watch(self.fd, os.fsencode(path), mask), -1)

    def remove(self, wds: list[int]) -> None:
        """Stop watching (no wait, unlike a close)."""
        for wd in wds:
            if wd >= 0 and self.fd >= 0:
                self.libc.inotify_rm_watch(self.fd, wd)

    def changed(self) -> set[int] | None:
        """The watches with an event since the last look (None: unknown)."""
        if self.fd < 0:
            return None
        wds: set[int] | None = set()
        try:
            while True:  # (all of it: the next look starts afresh)
                data = os.read(self.fd, 65536)
                at = 0
                while at + 16 <= len(data):
                    wd, mask, _, size = _EVENT.unpack_from(data, at)
                    at += 16 + size
                    if wds is not None:
                        if mask & self.IN_Q_OVERFLOW:
                            wds = None
                        else:
                            wds.add(wd)
        except BlockingIOError:
            pass
        return wds
