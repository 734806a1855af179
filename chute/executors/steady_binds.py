"""Host paths under ``/tmp`` that the worker's environment names, bound across steps.

A reused worker's steps see a private ``/tmp`` (:mod:`chute.executors.worker_tmp`); a host
path there that a step is handed is bound back in at its own path, as ``sandbox`` does
for a process step. A path the step's own texts name is bound for that step only
(:meth:`PrivateTmp.expose`). One that the controller's environment names is handed to
every step alike (``TMPDIR=/tmp/x``; ``OLDPWD`` of a shell that was in ``/tmp/x``; the
interpreter and ``PWD`` of a controller run from a checkout under ``/tmp``): it is bound
once and held (:meth:`SteadyBinds.hold`), where a bind and an unmount around each step
cost it 0.3-2.5 ms (the kernel's mount lock, and an RCU grace period for the unmount).
What is held is what ``sandbox`` would expose for those paths
(:func:`~chute.executors.sandbox.exposed_part`): a directory right below ``/tmp``, or
anything deeper.

A deeper one (``/tmp/a/b``) needs directories in the scratch down to its mount point
(``a``): its *skeleton*, which the step's ``/tmp`` shows as its own. What a step makes
there must go to its step directory like the rest of its ``/tmp``, so the skeleton is
watched for any change (:data:`DirWatch.ANY`); a step that touched it has the held bind
let go of after it, and its ``/tmp`` is then emptied as if nothing had been held. Only one
path is held below each entry of ``/tmp``, and none below an entry that also holds the
kept step directories, a private path, or where no watch can be made.

A held path is let go of (unmounted, what was made for it removed) for a step whose
private paths (inputs, outputs) lie in it (``sandbox`` would not expose it then), when it
no longer exists on the host or the environment stops naming it, when a step touched its
skeleton, and with the scratch (:meth:`PrivateTmp.close`). What a step writes in it goes
to the host, as a process step's does; emptying the step's ``/tmp`` leaves it in place.
"""

from __future__ import annotations

import os

from chute.executors import mounts
from chute.executors.dirwatch import DirWatch
from chute.executors.kept_dirs import missing, remove_mount_point
from chute.executors.sandbox import exposed_part, outermost


def env_dirs(paths: frozenset[str]) -> tuple[str, ...]:
    """The candidates to hold: ``paths`` (those under ``/tmp`` that the environment and
    the interpreter's path name), below an entry of ``/tmp``."""
    return tuple(sorted(p for p in paths if p.count("/") >= 2))


def _top(path: str) -> str:
    """The entry of ``/tmp`` that ``path`` (under ``/tmp``) lies in."""
    return path[5:].split("/", 1)[0]


class _Held:
    """One held bind: whether its mount point was made for it, and its skeleton."""

    __slots__ = ("made", "skeleton", "wds")

    def __init__(self, made: bool, skeleton: list[str], wds: list[int]) -> None:
        self.made = made
        self.skeleton = skeleton  # directories made in the scratch down to it
        self.wds = wds  # their watches


class SteadyBinds:
    """The held binds of a :class:`~chute.executors.worker_tmp.PrivateTmp` (a mixin: it
    uses the scratch, ``host``, ``watch``, ``kept``, ``chain``, ``unkeep`` and ``failed``
    of that class)."""

    def __init__(self) -> None:
        super().__init__()
        self.held: dict[str, _Held] = {}  # host path under /tmp -> its bind
        self.held_tops: dict[str, str] = {}  # the entry of /tmp each lies in -> it

    def wanted(self, candidates: tuple[str, ...], private: list[str]) -> list[str]:
        """What to hold for a step with ``private`` paths, of ``candidates``
        (:func:`env_dirs`): what ``sandbox`` would expose of them (holding neither a
        private path nor this worker's own directory), one below each entry of ``/tmp``
        (none for an entry with another of them, or that a deeper one shares with the
        kept step directories or a private path)."""
        if not candidates:
            return []
        mine = [*private, self.path or ""]
        parts = {p for c in candidates if (p := exposed_part(c, 2, mine, self.host))}
        busy = {_top(p) for p in mine if p.startswith("/tmp/")}
        if self.chain:
            busy.add(self.chain[0])
        by_top: dict[str, list[str]] = {}
        for p in outermost(parts):
            by_top.setdefault(_top(p), []).append(p)
        deep = self.watch is not None and self.watch.fd >= 0
        return [ps[0] for top, ps in by_top.items() if len(ps) == 1 and (
            ps[0].count("/") == 2 or (deep and top not in busy))]

    def hold(self, wanted: list[str]) -> None:
        """Have exactly ``wanted`` bound at their own paths in the scratch (bound now if
        new, let go of if no longer wanted). Kept step directories in one of them go: the
        held bind shows them."""
        for path in [p for p in self.held if p not in wanted]:
            self._let_go(path)
        for path in wanted:
            if path not in self.held:
                self._hold(path)

    def _hold(self, path: str) -> None:
        kept = self.kept
        if kept is not None and kept.startswith(path + "/"):
            self.unkeep()
        mp = self.scratch + path[4:]
        parent = os.path.dirname(mp)
        skeleton = missing(parent)
        if (os.path.dirname(skeleton[0]) if skeleton else parent) != self.scratch:
            return  # its entry of /tmp is there already (not ours to watch): per step
        for d in skeleton:
            os.mkdir(d)
        made = not os.path.lexists(mp)
        if made:
            if os.path.isdir(self.host(path)):
                os.mkdir(mp)
            else:
                os.close(os.open(mp, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
        # watched once all is made: what the step changes there, not this
        wds = [self.watch.add(d, DirWatch.ANY) for d in skeleton] if skeleton else []
        self.held[path] = _Held(made, skeleton, wds)
        self.held_tops[_top(path)] = path
        if -1 in wds:  # not watched: a change would go unseen
            self._let_go(path, bound=False)
            return
        try:
            mounts.bind(self.host(path), path)
        except OSError:
            self._let_go(path, bound=False)
            raise

    def holds(self, path: str) -> bool:
        """Whether ``path`` is in view through a held bind."""
        if not self.held or not path.startswith("/tmp/"):
            return False
        held = self.held_tops.get(_top(path))
        return held is not None and (path == held or path.startswith(held + "/"))

    def let_go_touched(self, events: set[int] | None) -> bool:
        """After a step: let go of the held binds whose skeleton had an event (``events``:
        the watches that had one; None: unknown, so all of them); whether any was."""
        touched = [p for p, h in self.held.items()
                   if h.skeleton and (events is None or any(wd in events for wd in h.wds))]
        for path in touched:
            self._let_go(path)
        return bool(touched)

    def let_go_all(self) -> None:
        """Let go of every held bind (the scratch is going)."""
        for path in list(self.held):
            self._let_go(path)

    def _let_go(self, path: str, bound: bool = True) -> None:
        held = self.held.pop(path)
        del self.held_tops[_top(path)]
        if held.wds and self.watch is not None:
            self.watch.remove(held.wds)
        mp = self.scratch + path[4:]
        if bound:
            try:
                mounts.unmount(path)
            except OSError:  # e.g. a step moved a directory above it
                self.failed = True  # the step's view is not as it should be: retire
                return
        if held.made:
            remove_mount_point(mp)  # (else the step's: moved out with the rest of its /tmp)
        for d in reversed(held.skeleton):
            try:
                os.rmdir(d)
            except OSError:
                break  # not empty: the step made something there (moved out likewise)
