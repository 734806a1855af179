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

PR_SET_CHILD_SUBREAPER = 36
_TICKS = os.sysconf("SC_CLK_TCK")
_boot_time: float | None = None


def _btime() -> float:
    global _boot_time
    if _boot_time is None:
        with open("/proc/stat", "rb") as f:
            for line in f:
                if line.startswith(b"btime "):
                    _boot_time = float(line.split()[1])
                    break
            else:  # pragma: no cover - every Linux /proc/stat has btime
                _boot_time = 0.0
    return _boot_time


def _stat(pid: int) -> list[bytes] | None:
    """Fields of /proc/<pid>/stat after the command name (state is [0]), or None if gone."""
    try:
        data = _read(f"/proc/{pid}/stat")
    except OSError:
        return None
    # the command name may contain spaces and parentheses: split after the last ')'
    return data[data.rfind(b")") + 2 :].split()


def create_time(pid: int) -> float | None:
    """Start time of ``pid`` in epoch seconds (10 ms resolution), or None if it is gone.

    Read from /proc directly rather than through psutil: the fork server and the
    supervisors stay small, which keeps every fork cheap.
    """
    f = _stat(pid)
    if not f:
        return None
    try:
        return round(_btime() + int(f[19]) / _TICKS, 2)
    except (IndexError, ValueError):
        return None


def same_process(pid: int | None, started: float | None) -> bool:
    """True if ``pid`` is alive, not a zombie, and is the process that started at ``started``."""
    if not pid:
        return False
    f = _stat(pid)
    if not f or f[0] in (b"Z", b"X"):
        return False
    if started is None:
        return True
    try:
        now = round(_btime() + int(f[19]) / _TICKS, 2)
    except (IndexError, ValueError):
        return False
    return same_start(now, started)  # otherwise the pid was reused by another process


def same_start(a: float, b: float) -> bool:
    """Whether two create times (10 ms clock ticks, rounded) are the same moment."""
    return abs(a - b) < 0.015


def become_subreaper() -> bool:
    """Make this process adopt orphaned descendants (Linux ``prctl``); False if unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def session_members(sid: int) -> list[int]:
    """Live (non-zombie) pids whose session id or process group is ``sid``."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        f = _stat(int(name))
        try:
            if f and f[0] != b"Z" and (int(f[3]) == sid or int(f[2]) == sid):
                out.append(int(name))
        except (IndexError, ValueError):
            pass
    return out


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (all its threads), from /proc/<pid>/task/*/children."""
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            out.extend(int(x) for x in _read(f"/proc/{pid}/task/{tid}/children").split())
        except OSError:
            continue
    return out


def _read(path: str) -> bytes:
    """The content of a small /proc file, with no file object: a supervisor reads these
    right after forking a step, where every object made costs a copy-on-write fault."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, 65536)
        while len(data) % 65536 == 0 and data:  # a children list longer than that
            more = os.read(fd, 65536)
            if not more:
                break
            data += more
        return data
    finally:
        os.close(fd)


def live_descendants(pid: int) -> list[int]:
    """Live (non-zombie) descendants of ``pid``, walking the kernel's children lists."""
    out: list[int] = []
    todo = _children(pid)
    seen = set()
    while todo:
        c = todo.pop()
        if c in seen:
            continue
        seen.add(c)
        f = _stat(c)
        if f and f[0] not in (b"Z", b"X"):
            out.append(c)
        todo.extend(_children(c))
    return out


def _send(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError as e:  # gone already, or not ours to signal
        if e.errno not in (errno.ESRCH, errno.EPERM):
            raise


def signal_step(sid: int, sig: int, *, root: int | None = None, scan: bool = True) -> list[int]:
    """Send ``sig`` to the step's group/session and to every descendant of ``root``.

    ``sid`` is the step's first pid (its session and group id). ``scan`` also searches
    /proc for members of the session (needed when ``root`` is not a subreaper). Returns
    the pids that were alive and signalled (empty: nothing of the step is left).
    """
    try:
        os.killpg(sid, sig)
    except OSError:
        pass
    targets = set(live_descendants(root)) if root else set()
    if scan or not root:
        targets.update(session_members(sid))
    targets.discard(os.getpid())
    for pid in targets:
        _send(pid, sig)
    return sorted(targets)


def kill_step(
    sid: int,
    *,
    root: int | None = None,
    scan: bool = True,
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
        alive = signal_step(sid, signal.SIGTERM, root=root, scan=scan)
        end = time.monotonic() + grace
        while alive and time.monotonic() < end:
            time.sleep(tick)
            reap()
            alive = _alive(sid, root, scan)
        if not alive:
            return True
    end = time.monotonic() + give_up
    while True:
        alive = signal_step(sid, signal.SIGKILL, root=root, scan=scan)
        reap()
        if not alive:
            return True
        if time.monotonic() > end:
            return False
        time.sleep(tick / 2)


def _alive(sid: int, root: int | None, scan: bool) -> list[int]:
    alive = set(live_descendants(root)) if root else set()
    if scan or not root:
        alive.update(session_members(sid))
    alive.discard(os.getpid())
    return sorted(alive)
