"""The directory holding a run's step directories, bound into a reused worker's ``/tmp``
once for all its steps (:mod:`chute.executors.worker_tmp`).

A step directory under the host's ``/tmp`` (a chute home there: tests' temporary
directories) must be seen at its own path in the step's private ``/tmp``. Binding each
step's directory, with a chain of mount points made for it, would cost more than the rest
of a no-op step; so the directory holding them, a run's, is bound once
(:meth:`KeptStepDirs.keep`), the chain of directories down to its mount point made in the
scratch and watched (what a step makes beside it is moved out with the rest of its
``/tmp``). The next run's steps get the old mount point renamed; a chain elsewhere is
moved out of the scratch at once and removed after the reply (:meth:`KeptStepDirs.tidy`).
"""

from __future__ import annotations

import errno
import os
import shutil

from chute.executors import mounts


class KeptStepDirs:
    """The kept directory of a :class:`~chute.executors.worker_tmp.PrivateTmp` (a mixin:
    it uses the scratch, ``host``, ``levels``, ``watch``, ``wds``, ``holds`` and
    ``failed`` of that class)."""

    def __init__(self) -> None:
        super().__init__()
        self.kept: str | None = None  # the step directories' parent, bound across steps
        self.kept_skeleton: list[str] = []  # its mount point's chain, made in the scratch
        self.chain: list[str] = []  # names from the scratch down to that mount point
        self.stale: list[str] = []  # an old chain, moved out of the scratch: removed by
        # tidy() after the reply (an rmdir of a former mount point takes ~0.2-2 ms)
        self.stale_seq = 0

    def keep(self, step_dir: str, private: list[str]) -> None:
        """Show the host directory holding ``step_dir`` (under the host's ``/tmp``) at its
        own path, bound once for all the steps of that directory (a run's steps: a bind
        and a mount point chain per step would cost more than the rest of a no-op step).
        Not if it holds a private path or the scratch."""
        parent = os.path.dirname(step_dir)
        if parent == self.kept:
            return
        if self.holds(parent):
            self.unkeep()
            return  # in view: a held bind shows it
        other = self.held_tops.get(parent[5:].split("/", 1)[0])
        if other is not None:
            self._let_go(other)  # a deeper held bind shares its entry of /tmp: now the chain's
        shared = parent.count("/") >= 2 and not any(
            p == parent or p.startswith(parent + "/") for p in [*private, self.path or ""])
        if shared and self._move_keep(parent):
            return
        self.unkeep()
        if not shared:
            return  # then bound per step, as any other handed path (expose())
        mp = self.scratch + parent[4:]
        self.kept_skeleton = missing(mp)
        os.makedirs(mp, exist_ok=True)
        self.chain = parent[5:].split("/")
        for i in range(1, len(self.chain)):
            path = "/".join([self.scratch, *self.chain[:i]])
            self.levels.append(os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
            self.wds.append(self.watch.add(path) if self.watch is not None else -1)
        mounts.bind(self.host(parent), parent)
        self.kept = parent

    def _move_keep(self, parent: str) -> bool:
        """Keep ``parent``, a sibling of the kept directory (the next run's steps in the
        same chute home): its mount point is the old one renamed, the chain's directories
        and their watches stay (an unmount, a rename and a bind, ~0.15 ms, where making
        the chain again costs mkdirs and rmdirs, ~0.5-2 ms). False if not so: as before."""
        old = self.kept
        if old is None or os.path.dirname(old) != os.path.dirname(parent) or \
                not self.kept_skeleton or self.kept_skeleton[-1] != self.scratch + old[4:]:
            return False
        try:
            mounts.unmount(old)
        except OSError:
            return False  # (unkeep() tries again, and says whether that matters)
        self.kept = None
        mp = self.scratch + parent[4:]
        try:
            os.rename(self.kept_skeleton[-1], mp)  # (an empty directory once unmounted)
        except OSError:
            return False
        self.kept_skeleton[-1] = mp
        self.chain[-1] = os.path.basename(parent)
        mounts.bind(self.host(parent), parent)
        self.kept = parent
        return True

    def unkeep(self) -> None:
        """Undo :meth:`keep` (a failed unmount sets ``failed``: the worker retires). The
        mount point's chain is moved out of the scratch, for :meth:`tidy` to remove."""
        if self.kept is not None:
            self.kept = None
            try:
                mounts.unmount("/tmp/" + "/".join(self.chain))
            except OSError as e:  # gone already: its mount point was deleted on the host
                self.failed = self.failed or e.errno not in (errno.EINVAL, errno.ENOENT)
        skeleton = self.kept_skeleton
        if skeleton and not self.failed:
            self.stale_seq += 1
            stale = f"{self.own}/stale-{self.stale_seq}"
            try:
                os.rename(skeleton[0], stale)
                self.stale.append(stale)
                skeleton = []
            except OSError:
                pass
        for path in reversed(skeleton):
            try:
                os.rmdir(path)
            except OSError:
                pass
        for fd in self.levels[1:]:
            os.close(fd)
        if self.watch is not None:
            self.watch.remove(self.wds[1:])
        del self.levels[1:], self.wds[1:]
        self.kept_skeleton, self.chain = [], []

    def tidy(self) -> None:
        """After the reply: remove the chains :meth:`unkeep` moved out of the scratch."""
        while self.stale:
            shutil.rmtree(self.stale.pop(), ignore_errors=True)


def missing(path: str) -> list[str]:
    """``path`` and its ancestors that do not exist yet, outermost first."""
    out = []
    while not os.path.lexists(path) and path != os.path.dirname(path):
        out.append(path)
        path = os.path.dirname(path)
    return out[::-1]


def remove_mount_point(path: str) -> None:
    """Remove a mount point made for a bind, once unmounted, if nothing was put in it (an
    empty directory, or an empty file); else leave it (a step wrote there)."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            os.rmdir(path)
        elif os.path.getsize(path) == 0:
            os.unlink(path)
    except OSError:
        pass
