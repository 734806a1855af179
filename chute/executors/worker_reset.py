"""What a step may leave in a reused worker's process, found and put back between steps.

Helpers of :mod:`chute.executors.reused_worker`: its child processes (reaped, or killed as
a container's end kills them), the signal handlers a step set (noted as they are set, so
that only those are compared after it), and the garbage collector, run between steps
rather than in one.
"""

from __future__ import annotations

import gc
import os
import signal
import time

from chute.executors import proctree


def children_left() -> bool:
    """Reap exited children; whether a live one is left (one syscall in the usual case)."""
    try:
        while True:
            pid, _ = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return True
    except ChildProcessError:
        return False


def kill_children() -> None:
    """SIGKILL every descendant (we are their subreaper) until none is left."""
    end = time.monotonic() + 5.0
    while time.monotonic() < end:
        pids = proctree.live_descendants(os.getpid())
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.002)
        children_left()
    children_left()


set_signals: set[int] = set()  # signals a step set a handler for (signal.signal)


def track_signals() -> None:
    """Note every ``signal.signal`` call, so that after a step only the signals it set are
    compared (a look at every signal costs ~50 us a step)."""
    original = signal.signal

    def tracked(signalnum, handler):
        set_signals.add(int(signalnum))
        return original(signalnum, handler)

    tracked.__doc__ = original.__doc__
    tracked.__wrapped__ = original  # type: ignore[attr-defined]
    signal.signal = tracked


def collect_ahead() -> None:
    """Run the garbage collector now, between steps, if it is nearly due: each step's
    ``__main__`` (module, namespace, functions) is a cycle only the collector frees, so it
    runs every hundred steps or so (0.1-0.2 ms; a full collection ~5 ms), and not in a
    step's path this way. The generation is the one the collector would take (less the
    full collection's ratio test)."""
    if not gc.isenabled():
        return
    count, threshold = gc.get_count(), gc.get_threshold()
    if threshold[0] and count[0] >= threshold[0] * 3 // 4:
        gc.collect(2 if count[1] >= threshold[1] and count[2] >= threshold[2]
                   else 1 if count[1] >= threshold[1] else 0)
