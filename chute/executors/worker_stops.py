"""The deadlines and stops of a :class:`~chute.executors.worker_pool.WorkerPool`'s steps.

A step's deadline, and the grace period after a stop, are timers on one heap, served by
one watchdog thread started on first need. A stop (deadline or cancel) sends SIGTERM to
the worker's process group and descendants, and SIGKILL after ``grace_seconds``
(:mod:`chute.executors.proctree`): a stopped step takes its worker with it. A step that
replied in time but was not read yet is read first, never reported as a TIMEOUT. Apart
from the pool's module because none of this is on a step's path: only steps with a
deadline, and stops, come here.
"""

from __future__ import annotations

import heapq
import signal
import threading
import time
from typing import TYPE_CHECKING

from chute.executors import proctree
from chute.executors.base import TIMEOUT, StepResult
from chute.executors.supervisor import DEADLINE_MESSAGE

if TYPE_CHECKING:
    from chute.executors.worker_pool import _Job
    from chute.executors.worker_proc import WorkerProc


class PoolStops:
    """Deadlines, stops and the watchdog thread (a mixin of ``WorkerPool``: it uses the
    pool's lock, jobs, ``_pump``, ``_finish`` and the timer heap made in its
    ``__init__``)."""

    def _stop(self, job: _Job, outcome: str, message: str) -> None:
        """Begin stopping ``job`` (lock held): SIGTERM now, SIGKILL after the grace."""
        job.stop = (outcome, message)
        w = job.worker
        if w is None:  # still queued: it never starts
            self._finish(job, StepResult(outcome, None, message, finished_at=time.time()))
            return
        w.gone = True
        if w.proc.returncode is None:  # not reaped: the pid is still the worker's
            proctree.signal_step(w.pid, signal.SIGTERM, root=w.pid, scan=False)
        self._timer(time.time() + max(job.spec.grace_seconds, 0.0), "kill", w)

    def _timer(self, when: float, what: str, it: object) -> None:
        """Wake the watchdog at ``when`` (lock held; the thread starts on first need)."""
        self._timer_seq += 1
        if len(self._timed) > 1024 and len(self._timed) > 4 * len(self._jobs):
            # deadlines of steps long finished (a day's deadline on each of many steps)
            self._timed = [t for t in self._timed
                           if not (t[2] == "deadline" and t[3].done)]
            heapq.heapify(self._timed)
        earliest = self._timed[0][0] if self._timed else None
        heapq.heappush(self._timed, (when, self._timer_seq, what, it))
        if self._watchdog is None:
            self._watchdog = threading.Thread(target=self._watch, name="chute-worker-watchdog",
                                              daemon=True)
            self._watchdog.start()
        elif earliest is None or when < earliest:
            self._cond.notify()  # it sleeps until a later time

    def _watch(self) -> None:
        while True:
            kills = []
            with self._lock:
                if self._closed:
                    return
                now = time.time()
                due = []
                while self._timed and self._timed[0][0] <= now:
                    due.append(heapq.heappop(self._timed))
                if any(what == "deadline" for _, _, what, _ in due):
                    self._pump(None)  # a step that replied in time, unread: not a TIMEOUT
                for _, _, what, it in due:
                    if what == "deadline":
                        job = it
                        if not job.done and job.stop is None:
                            self._stop(job, TIMEOUT, DEADLINE_MESSAGE)
                    else:
                        kills.append(it)
                if not kills:
                    wait = (self._timed[0][0] if self._timed else now + 60.0) - now
                    self._cond.wait(max(wait, 0.0))
            for w in kills:
                self._kill(w)

    def _kill(self, w: WorkerProc) -> None:
        """SIGKILL the worker and everything of its session and below it."""
        w.gone = True
        if w.proc.poll() is None:  # once reaped, its pid may be another process's
            proctree.kill_step(w.pid, root=w.pid, scan=True, give_up=2.0)
