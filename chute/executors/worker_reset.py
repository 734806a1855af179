"""What a step may leave in a reused worker's process, found and put back between steps.

Helpers of :mod:`chute.executors.reused_worker`: the process's state as the steps must
find it, noted once and put back after each step (:class:`ProcessState`: environment,
working directory, ``sys`` attributes, signal handlers and mask, ...), its child
processes (reaped, or killed as a container's end kills them), the signal handlers a step
set (noted as they are set, so that only those are compared after it), and the garbage
collector, run between steps rather than in one.
"""

from __future__ import annotations

import _signal
import atexit
import gc
import os
import signal
import sys
import threading
import time
import warnings

from chute.executors import proctree, warm_step


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


HANDLED = frozenset(warm_step.ALL_SIGNALS - {signal.SIGKILL, signal.SIGSTOP})


class ProcessState:
    """The process's state a step may change, noted after the imports and put back after
    each step (a mixin of the reused worker's ``Worker``: it uses its ``tmp``, ``home``,
    ``base_env``, ``base_data`` and ``last_stdio``)."""

    def baseline(self) -> None:
        """What a step must leave as it found it (taken once, after the imports)."""
        self.threads = {t.ident for t in threading.enumerate()}
        self.nthreads = len(self.threads)
        self.signals = {s: _signal.getsignal(s) for s in HANDLED}
        set_signals.clear()
        self.sigmask = _signal.pthread_sigmask(signal.SIG_BLOCK, ())
        self.atexit = atexit._ncallbacks()
        self.path = list(sys.path)
        self.argv = list(sys.argv)
        self.stdio = (sys.stdin, sys.stdout, sys.stderr)
        self.main = sys.modules["__main__"]
        self.recursion = sys.getrecursionlimit()
        self.filters = list(warnings.filters)
        self.umask = os.umask(0o022)
        os.umask(self.umask)
        # /dev/null, the pump's pipes, the host's /tmp (through which our file work goes)
        self.fds = (0, 1, 2, self.tmp.host_fd)
        self.stdfds = [os.fstat(fd).st_ino for fd in self.fds]

    def _check(self) -> str | None:
        """Before the reply: put back what may retire the worker; why it retires, if so."""
        why = ", ".join(self.left) if self.left else None
        if _signal.pthread_sigmask(signal.SIG_SETMASK, self.sigmask) != self.sigmask:
            why = why or "signal mask"
        if signal.getitimer(signal.ITIMER_REAL) != (0.0, 0.0):
            signal.setitimer(signal.ITIMER_REAL, 0)
            why = why or "timer"
        if set_signals:
            for s in set_signals:
                h = self.signals.get(s)
                if h is not None and _signal.getsignal(s) != h:
                    try:
                        _signal.signal(s, h)
                    except (OSError, ValueError, TypeError):
                        pass
                    why = why or "signal handlers"
            set_signals.clear()
        return why

    def _restore(self, step_env: dict[str, str]) -> None:
        os.chdir(self.home)
        for k in step_env:  # the usual case: only the step's own variables differ
            if k in self.base_env:
                os.environ[k] = self.base_env[k]
            else:
                os.environ.pop(k, None)
        if os.environ._data != self.base_data:  # type: ignore[attr-defined] - the step's own
            os.environ.clear()
            os.environ.update(self.base_env)
        sys.argv = list(self.argv)
        sys.path[:] = self.path
        stdout = self.last_stdio[1]
        if stdout is not None and not stdout.closed and stdout.line_buffering:
            # the runtime makes stdout line-buffered: as new again for the next step (if
            # _stdio() hands it out again), off its path
            stdout.reconfigure(line_buffering=False)
        sys.stdin, sys.stdout, sys.stderr = sys.__stdin__, sys.__stdout__, sys.__stderr__ = \
            self.stdio
        sys.modules["__main__"] = self.main
        sys.excepthook = sys.__excepthook__
        if sys.getrecursionlimit() != self.recursion:
            sys.setrecursionlimit(self.recursion)
        if warnings.filters != self.filters:
            warnings.filters[:] = self.filters
            warnings._filters_mutated()  # type: ignore[attr-defined]
        os.umask(self.umask)
