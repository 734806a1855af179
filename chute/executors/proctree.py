"""Find and kill every process a step started, however it tried to get away.

A step is started in its own session and process group, under a supervisor that is a
child subreaper (``PR_SET_CHILD_SUBREAPER``): a double-forked daemon that left the group
and the session is still re-parented to the supervisor, so it stays a descendant. A kill
therefore signals three overlapping sets — the process group, the session, and every
descendant of the supervisor — until none of them is alive.

Identity of a pid across time is ``(pid, create_time)``: a pid file written with the
create time cannot be confused with an unrelated process that got the same pid later.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import time

import psutil

PR_SET_CHILD_SUBREAPER = 36


def create_time(pid: int) -> float | None:
    """Start time of ``pid`` (epoch seconds, as psutil reports it), or None if gone."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def same_process(pid: int | None, started: float | None) -> bool:
    """True if ``pid`` is alive, not a zombie, and is the process that started at ``started``."""
    if not pid:
        return False
    try:
        p = psutil.Process(pid)
        if started is not None and abs(p.create_time() - started) > 0.01:
            return False  # the pid was reused by another process
        return p.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def become_subreaper() -> bool:
    """Make this process adopt orphaned descendants (Linux ``prctl``); False if unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _stat_fields(pid: int) -> tuple[str, int, int] | None:
    """(state, pgrp, session) of ``pid`` from /proc/<pid>/stat, or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # the command name may contain spaces and parentheses: split after the last ')'
    rest = data[data.rfind(b")") + 2 :].split()
    try:
        return rest[0].decode(), int(rest[2]), int(rest[3])
    except (IndexError, ValueError):
        return None


def session_members(sid: int) -> list[int]:
    """Live (non-zombie) pids whose session id or process group is ``sid``."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        f = _stat_fields(int(name))
        if f and f[0] != "Z" and (f[2] == sid or f[1] == sid):
            out.append(int(name))
    return out


def live_descendants(pid: int) -> list[int]:
    """Live (non-zombie) descendants of ``pid``."""
    try:
        kids = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    out = []
    for k in kids:
        try:
            if k.status() != psutil.STATUS_ZOMBIE:
                out.append(k.pid)
        except psutil.NoSuchProcess:
            pass
    return out


def _send(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError as e:  # gone already, or not ours to signal
        if e.errno not in (errno.ESRCH, errno.EPERM):
            raise


def signal_step(sid: int, sig: int, *, root: int | None = None, scan: bool = True) -> list[int]:
    """Send ``sig`` to the step's group/session and to every descendant of ``root``.

    ``sid`` is the step's first pid (its session and group id). Returns the pids that were
    still alive and signalled (empty: nothing of the step is left).
    """
    try:
        os.killpg(sid, sig)
    except OSError:
        pass
    targets = set(live_descendants(root)) if root else set()
    if scan:
        targets.update(session_members(sid))
    targets.discard(os.getpid())
    for pid in targets:
        _send(pid, sig)
    return sorted(targets)


def kill_step(
    sid: int,
    *,
    root: int | None = None,
    grace: float = 0.0,
    reap=None,
    tick: float = 0.01,
    give_up: float = 5.0,
) -> bool:
    """SIGTERM the step's processes, SIGKILL after ``grace`` seconds, until none is alive.

    ``reap`` is called between rounds (the supervisor reaps its zombies there). Returns
    True when nothing of the step is left, False if something survived ``give_up``
    seconds of SIGKILL (it cannot happen short of an uninterruptible sleep).
    """
    reap = reap or (lambda: None)
    if grace > 0:
        alive = signal_step(sid, signal.SIGTERM, root=root)
        end = time.monotonic() + grace
        while alive and time.monotonic() < end:
            time.sleep(tick)
            reap()
            alive = _alive(sid, root)
        if not alive:
            return True
    end = time.monotonic() + give_up
    while True:
        alive = signal_step(sid, signal.SIGKILL, root=root)
        reap()
        if not alive:
            return True
        if time.monotonic() > end:
            return False
        time.sleep(tick / 2)


def _alive(sid: int, root: int | None) -> list[int]:
    alive = set(live_descendants(root)) if root else set()
    alive.update(session_members(sid))
    alive.discard(os.getpid())
    return sorted(alive)
