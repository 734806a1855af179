"""Numbered crash points at the engine's durable write boundaries (RELIABILITY R-2).

``crash_point(name)`` marks a place where the controller has just made (or is
about to make) something durable. It does nothing unless the process was started with
``CHUTE_CRASH_AT=<name>[:<nth hit>]``; then the nth time that point is reached the process
SIGKILLs itself, as a power cut or an OOM kill would, after recording that it fired in the
file ``CHUTE_CRASH_MARKER`` names (created with O_EXCL, so a point fires at most once even
in processes forked from the armed one). Tests loop over :data:`POINTS` (the registry) to
crash at every boundary in turn, then check that a restarted controller finishes the run.
Points named ``serve.*`` are reached only by a standalone controller (``chute controller``).

The environment is read once at import and removed from ``os.environ`` so that the
processes the controller starts (fork server, step supervisors, user code) are not armed.
Disabled, a crash point is one global lookup and a return.
"""

from __future__ import annotations

import os
import signal
import time

from chute.engine import phases as P

#: Every crash point, numbered in the order a run reaches them, with what is durable there.
POINTS: dict[str, str] = {
    "submit.created": "the workflow row is committed; no controller has driven it yet",
    "serve.lease_acquired": "a standalone controller committed the named controller lease",
    "serve.claimed": "a standalone controller committed its leases on unclaimed workflows",
    "adopt.claimed": "a controller committed its lease on the workflow; nothing replayed yet",
    "flush.before_commit": "decisions are drained from the state but not committed",
    "flush.launched_early": "a step that dies with the controller (a reused worker's) was "
                            "started; the commit recording it Running is not written yet",
    "flush.held": "a turn of reused-worker steps only (ended, and started early) is held "
                  "for the next commit (chute.engine.holds); nothing of it is committed",
    "flush.committed": "a turn's decisions are committed; nothing acted on yet",
    "flush.running_committed": "pods are committed as Running but not launched",
    "launch.lineage_recorded": "a pod's consumed artifacts (lineage) are committed, pod not launched",
    "launch.spawned": "a pod's supervisor was started; the controller has not polled it",
    "outputs.saved": "a finished pod's artifact and metric rows are committed, its phase is not",
    "flush.result_committed": "a pod's final phase is committed",
    "flush.cache_committed": "a memoized result is committed to the cache",
    "control.applied": "a resume request was applied in memory, its effects not committed",
    "lease.renewed": "the heartbeat committed a lease renewal",
    "flush.completed": "the workflow's final phase is committed",
    "lease.released": "the controller committed giving up its leases",
}
NUMBER = {name: i + 1 for i, name in enumerate(POINTS)}

ENV_AT = "CHUTE_CRASH_AT"
ENV_MARKER = "CHUTE_CRASH_MARKER"


def _parse(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    name, _, nth = value.partition(":")
    if name not in POINTS:
        raise ValueError(f"{ENV_AT}={value!r}: unknown crash point {name!r}")
    return name, int(nth or 1)


_ARMED = _parse(os.environ.pop(ENV_AT, None))
_MARKER = os.environ.pop(ENV_MARKER, None)
_PID = os.getpid()
_hits = 0


def armed() -> tuple[str, int] | None:
    """The (point, nth hit) this process will crash at, or None."""
    return _ARMED


def crash_point(name: str) -> None:
    """Crash here (SIGKILL this process) if armed for ``name`` and this is the nth hit."""
    if _ARMED is None or _ARMED[0] != name or os.getpid() != _PID:
        return
    global _hits
    _hits += 1
    if _hits != _ARMED[1]:
        return
    if _MARKER:
        try:  # O_EXCL: whoever creates the marker is the one process that crashes
            fd = os.open(_MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return
        os.write(fd, f"{NUMBER[name]} {name} {_hits} {os.getpid()} {time.time():.6f}\n".encode())
        os.fsync(fd)
        os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


def after_flush(decisions, starting) -> None:
    """The controller's crash points after a turn's commit, named by what it made durable
    (``decisions``: (run, Decisions) pairs; ``starting``: pods committed as Running)."""
    if _ARMED is None:
        return
    crash_point("flush.committed")
    if starting:
        crash_point("flush.running_committed")
    nodes = [n for _, d in decisions for n in (*d.new_nodes, *d.changed_nodes)]
    if any(n.type == P.POD and n.phase in _FINAL for n in nodes):
        crash_point("flush.result_committed")
    if any(d.cache_writes for _, d in decisions):
        crash_point("flush.cache_committed")
    if any(run.state.done for run, _ in decisions):
        crash_point("flush.completed")


_FINAL = frozenset({P.SUCCEEDED, P.FAILED, P.ERROR})
