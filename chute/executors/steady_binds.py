"""Host directories under ``/tmp`` that the worker's environment names, bound across steps.

A reused worker's steps see a private ``/tmp`` (:mod:`chute.executors.worker_tmp`); a host
path there that a step is handed is bound back in at its own path, as ``sandbox`` does
for a process step. A path the step's own texts name is bound for that step only
(:meth:`PrivateTmp.expose`). A directory right below ``/tmp`` that the controller's
environment names (``TMPDIR=/tmp/x``, or ``OLDPWD`` of a shell that was in ``/tmp/x``) is
handed to every step alike: it is bound once and held (:meth:`SteadyBinds.hold`), where
a bind and an unmount around each step cost it 0.3-2.5 ms (the kernel's mount lock, and
an RCU grace period for the unmount). What ``sandbox`` exposes for such a path is that
directory; deeper paths, and what a step's own texts name, stay per step.

A held directory is let go of (unmounted, the mount point made for it removed) for a step
whose private paths (inputs, outputs) lie in it (``sandbox`` would not expose it then),
when it no longer exists on the host or the environment stops naming it, and with the
scratch (:meth:`PrivateTmp.close`). What a step writes there goes to the host, as a
process step's does; emptying the step's ``/tmp`` leaves the mount point where it is.
"""

from __future__ import annotations

import errno
import os

from chute.executors import mounts


def env_dirs(paths: frozenset[str]) -> tuple[str, ...]:
    """Of ``paths`` (those under ``/tmp`` that the environment names), the ones right
    below ``/tmp``: the candidates to hold (:meth:`SteadyBinds.hold`)."""
    return tuple(sorted(p for p in paths if p.count("/") == 2))


class SteadyBinds:
    """The held binds of a :class:`~chute.executors.worker_tmp.PrivateTmp` (a mixin: it
    uses the scratch, ``host``, ``kept``, ``unkeep`` and ``failed`` of that class)."""

    def __init__(self) -> None:
        self.held: dict[str, bool] = {}  # /tmp/NAME -> whether we made its mount point
        self.held_names: frozenset[str] = frozenset()  # their NAMEs

    def wanted(self, dirs: tuple[str, ...], private: list[str]) -> list[str]:
        """Of ``dirs`` (:func:`env_dirs`), those to hold for a step with ``private``
        paths: directories on the host that hold none of them, nor this worker's own."""
        if not dirs:
            return []
        mine = [*private, self.path or ""]
        return [d for d in dirs if not any(p == d or p.startswith(d + "/") for p in mine)
                and os.path.isdir(self.host(d))]

    def hold(self, wanted: list[str]) -> None:
        """Have exactly ``wanted`` bound at their own paths in the scratch (bound now if
        new, let go of if no longer wanted). A kept step directory in one of them goes:
        the held bind shows it."""
        for path in [p for p in self.held if p not in wanted]:
            self._let_go(path)
        for path in wanted:
            if path in self.held:
                continue
            kept = self.kept
            if kept is not None and kept.startswith(path + "/"):
                self.unkeep()
            mp = self.scratch + path[4:]
            made = not os.path.lexists(mp)
            if made:
                os.mkdir(mp)
            mounts.bind(self.host(path), path)
            self.held[path] = made
            self.held_names = frozenset(p[5:] for p in self.held)

    def holds(self, path: str) -> bool:
        """Whether ``path`` is in view through a held bind."""
        return bool(self.held) and path.startswith("/tmp/") and \
            path[5:].split("/", 1)[0] in self.held_names

    def let_go_all(self) -> None:
        """Let go of every held bind (the scratch is going)."""
        for path in list(self.held):
            self._let_go(path)

    def _let_go(self, path: str) -> None:
        made = self.held.pop(path)
        self.held_names = frozenset(p[5:] for p in self.held)
        try:
            mounts.unmount(path)
        except OSError as e:  # (gone already: its mount point was deleted)
            self.failed = self.failed or e.errno not in (errno.EINVAL, errno.ENOENT)
            return
        if made:
            try:
                os.rmdir(self.scratch + path[4:])
            except OSError:
                pass
