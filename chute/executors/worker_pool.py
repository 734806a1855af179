"""WorkerPool: compiled SDK steps run in long-lived, reused worker processes.

The controller's end of :mod:`chute.executors.reused_worker`. Per set of modules (the key
the zygotes use, :func:`~chute.executors.warm_worker.preload_modules`) up to ``size``
workers (default ``os.cpu_count()``; an idle one exits when all sets together have
more than ``max(2 * size, 4)``), each started on first need as ``python -m
chute.executors.reused_worker MODULE...`` in its own session, and spoken to over its
stdin/stdout, one JSON line each way. A step costs one request and one reply: no fork,
no supervisor process, no step files (see the worker's module docstring for what a step
gets and the known differences from the fork path).

It is an Executor for the steps it takes (:class:`~chute.executors.python.PythonExecutor`
routes them here): :meth:`launch` hands the step to an idle worker, or queues it in
memory until one is free (never waiting for one). No thread reads the replies: the
shared :class:`~chute.executors.completions.Completions` watches the workers' stdouts
(:mod:`chute.executors.worker_proc`), so the controller's own thread, in ``wait`` or
``finished()``, wakes on a reply and reads it (one wake-up per step, not a reader
thread's and then the controller's): a :class:`~chute.executors.base.StepResult` kept for
:meth:`poll`, and the worker's next queued step sent. :meth:`poll`, :meth:`launch` (no
worker idle) and the watchdog (before a deadline's stop) read what is ready too: a pool
used without a controller, or a controller in a long turn, still sees every end. A
worker's end (EOF) is handled on a thread of its own (killing what its step left can take
a grace period). While steps are queued a feeder thread reads replies too, so a worker
that replied gets the next one at once. One watchdog thread, started on first need,
enforces deadlines and the grace period after a stop: SIGTERM to the worker's process
group and descendants, SIGKILL after ``grace_seconds`` (:mod:`chute.executors.proctree`);
the result is TIMEOUT with :data:`~chute.executors.supervisor.DEADLINE_MESSAGE`, or
CANCELLED with the reason, exactly as a process step's. A worker that dies mid-step
(``os._exit``, a signal, the OOM killer) fails its step as a process step would (exit
code, ``128+n`` for signal ``n``); a worker that retires (its step left something behind,
failed, or it ran ``max_steps``) or dies is replaced when a step needs one; one that ran
``max_steps`` leaves only once its replacement is up (:meth:`WorkerPool._last`).

Nothing is written for re-attachment: a worker dies with its controller (its stdin
closes), and a restarted controller's ``reattach`` finds no ``launch.json`` in the step
directory, so the engine runs the step again (at-least-once across a controller crash).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import OrderedDict, deque
from pathlib import Path

from chute.executors import proctree
from chute.executors.base import (
    CANCELLED,
    ERROR,
    LaunchSpec,
    StepHandle,
    StepResult,
)
from chute.executors.completions import Completions
from chute.executors.worker_proc import (
    ReplyPipes,
    Requests,
    WorkerProc,
    exit_result,
    reply_result,
)
from chute.executors.worker_stops import PoolStops

# steps a worker runs before it is recycled (bounds any slow leak). A replacement's start
# and imports cost 0.2 s of CPU with the SDK runtime's modules alone (more with numpy or
# pandas): every 1,000 steps that was 0.2 ms or more of CPU per step, as much as the rest
# of a no-op step's; Celery and gunicorn do not recycle workers at all by default
MAX_STEPS = 10_000
READY_TIMEOUT = 60.0  # seconds the first worker of a module set may take to import them
KEEP_RESULTS = 4096  # results kept after they were polled (a handle polled twice)


def eligible(spec: LaunchSpec) -> bool:
    """Whether a reused worker can give the step its private paths: ``/tmp`` only (the
    SDK's outputs, artifacts and inputs all live there); no emptyDir volumes."""
    if spec.volume_mounts or not _tmp_is_dir():
        return False
    for group in (spec.private_paths, spec.input_files, spec.output_paths):
        for p in group:
            if not p.startswith("/tmp/") or "/.." in p:
                return False
    return True


@functools.lru_cache(maxsize=1)
def _tmp_is_dir() -> bool:
    """Whether the host's /tmp is a real directory (a private one is mounted over it; a
    symlink would need a new root, which only the fork path makes)."""
    return os.path.isdir("/tmp") and not os.path.islink("/tmp")


@dataclasses.dataclass(eq=False)
class _Job:
    spec: LaunchSpec
    key: tuple[str, ...]
    worker: WorkerProc | None = None
    stop: tuple[str, str] | None = None  # (TIMEOUT or CANCELLED, message) once stopping
    done: bool = False


class WorkerPool(PoolStops):
    """Reused worker processes for compiled SDK steps (see the module docstring)."""

    def __init__(self, python: str | None = None, completions: Completions | None = None,
                 *, size: int | None = None, max_steps: int = MAX_STEPS) -> None:
        self.python = python or sys.executable
        self.completions = completions or Completions()
        self.size = size or os.cpu_count() or 1
        self.max_steps = max_steps
        # workers of all module sets together kept beyond which an idle one exits
        self.max_workers = max(2 * self.size, 4)
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self.worker_env = env
        self._lock = threading.Lock()
        self._workers: dict[tuple[str, ...], list[WorkerProc]] = {}
        self._idle: dict[tuple[str, ...], list[WorkerProc]] = {}
        self._queue: dict[tuple[str, ...], deque[_Job]] = {}
        self._jobs: dict[Path, _Job] = {}
        self._results: OrderedDict[Path, StepResult] = OrderedDict()
        self._unpolled: set[Path] = set()
        self._requests = Requests()
        # the worker started to take over from each worker past max_steps (see _last)
        self._replacements: dict[WorkerProc, WorkerProc] = {}
        self._usable: set[tuple[str, ...]] = set()
        self._broken: set[tuple[str, ...]] = set()
        self._cond = threading.Condition(self._lock)  # the watchdog's
        self._fed = threading.Condition(self._lock)  # the feeder's
        self._feeder: threading.Thread | None = None
        self._timed: list[tuple[float, int, str, object]] = []  # heap: (when, n, what, it)
        self._timer_seq = 0
        self._watchdog: threading.Thread | None = None
        self._closed = False
        self.cpu = 0.0  # CPU seconds the workers spent in steps (their replies' "cpu")
        # the workers' stdouts, watched by the completions: the controller's thread
        # wakes on a reply and reads it (an epoll fd is readable while one of its fds is)
        self._pipes = ReplyPipes()
        self.completions.watch(self._pipes.fileno(), self._drain)

    # -- workers

    def ready(self, key: tuple[str, ...], timeout: float = READY_TIMEOUT) -> bool:
        """Start the first worker for ``key`` if needed and wait until it has imported
        its modules; False (the steps then go to the fork path) if it cannot make a
        private mount namespace or does not come up."""
        with self._lock:
            if key in self._usable:
                return True
            if key in self._broken or self._closed:
                return False
            workers = self._workers.setdefault(key, [])
            if not workers:
                workers.append(self._spawn(key))
            first = workers[0]
        end = time.monotonic() + timeout
        while not first.ready.is_set() and (left := end - time.monotonic()) > 0:
            # nobody else may be reading: wait for any worker's line and read them all
            self._pipes.wait(min(left, 0.1))
            self.pump()
        ok = (first.ready.is_set() and bool(first.info) and not first.gone
              and first.proc.poll() is None and first.info.get("namespace") is None)
        with self._lock:
            (self._usable if ok else self._broken).add(key)
        if not ok:
            self._kill(first)
        return ok

    def usable(self, key: tuple[str, ...]) -> bool:
        """Whether :meth:`ready` said True for ``key`` and it still holds (never waits)."""
        with self._lock:
            return key in self._usable and key not in self._broken and not self._closed

    def worker_pids(self) -> dict[tuple[str, ...], list[int]]:
        """Pids of the live workers by module set (for tests and benchmarks)."""
        with self._lock:
            return {k: [w.pid for w in ws if not w.gone] for k, ws in self._workers.items()}

    def _start(self, key: tuple[str, ...]) -> None:
        """Another worker for ``key`` if the pool has room (lock held)."""
        workers = self._workers.setdefault(key, [])
        if len(workers) < self.size and key not in self._broken and not self._closed:
            workers.append(self._spawn(key))

    def _spawn(self, key: tuple[str, ...]) -> WorkerProc:
        """Start a worker for ``key``, its replies watched (lock held)."""
        w = WorkerProc(self.python, key, self.worker_env)
        self._pipes.add(w)
        return w

    def _next(self, w: WorkerProc) -> None:
        """Hand ``w`` its next queued step, or mark it idle (lock held)."""
        queue = self._queue.get(w.key)
        if not queue and sum(map(len, self._workers.values())) > self.max_workers:
            self._retire(w)  # idle, and more workers than wanted: fewer module sets now
            w.close_stdin()
            return
        while queue:
            job = queue.popleft()
            if job.done:
                continue
            if self._send(w, job):
                return
            queue.appendleft(job)
            return
        idle = self._idle.setdefault(w.key, [])
        idle.append(w)
        for o in [o for o in idle if o.steps >= self.max_steps and self._replaced(o)]:
            self._retire(o)  # spent, and its replacement is up (maybe w itself): it leaves
            o.close_stdin()

    def _last(self, w: WorkerProc) -> bool:
        """Whether ``w``'s next step is its last (lock held): once it has run
        ``max_steps`` and its replacement is up. Until then ``w`` goes on; the first time,
        its replacement is started (beyond ``size``: ``w`` leaves once it is up).
        Retiring first left the next step waiting for a new worker's start and imports
        (0.2 s: every 1,000th step of a chain)."""
        if w.steps + 1 < self.max_steps:
            return False
        if self._replaced(w):
            return True
        new = self._replacements.get(w)
        if (new is None or new.gone) and not self._closed and w.key not in self._broken:
            new = self._replacements[w] = self._spawn(w.key)  # (again if the last one died)
            self._workers.setdefault(w.key, []).append(new)
        return False

    def _replaced(self, w: WorkerProc) -> bool:
        """Whether the replacement started for ``w`` is up (lock held)."""
        new = self._replacements.get(w)
        return new is not None and new.ready.is_set() and not new.gone

    def _send(self, w: WorkerProc, job: _Job) -> bool:
        """Write the step's request to ``w`` (lock held); False if ``w`` is gone."""
        if not self._requests.send(w, job.spec, last=self._last(w)):
            w.gone = True  # the next pump sees its end and replaces it
            return False
        w.job, job.worker = job, w
        return True

    # -- the Executor protocol

    def launch(self, spec: LaunchSpec, key: tuple[str, ...] | None = None) -> StepHandle:
        """Hand the step to an idle worker of its module set (``key``, if the caller has
        it already), or queue it; returns at once. ``ready(key)`` must have said True."""
        if not spec.step_dir.is_absolute() or not spec.log_path.is_absolute():
            spec = dataclasses.replace(spec, step_dir=spec.step_dir.absolute(),
                                       log_path=spec.log_path.absolute())
        if key is None:
            from chute.executors.warm_worker import preload_modules

            key = preload_modules(spec.script_source or "")
        job = _Job(spec, key)
        step_dir = spec.step_dir
        with self._lock:
            self._jobs[step_dir] = job
            self._results.pop(step_dir, None)
            if not self._give(job):
                # a worker may have replied since anyone last read: it takes the queue's
                # head first (and is idle for this one if the queue was empty)
                self._pump(None)
                if not self._give(job):
                    self._queue.setdefault(key, deque()).append(job)
                    self._feed()
                    if not self._idle.get(key):
                        self._start(key)
            if spec.deadline is not None:
                self._timer(spec.deadline, "deadline", job)
        return StepHandle(step_dir=step_dir)

    def _give(self, job: _Job) -> bool:
        """Send ``job`` to an idle worker of its module set (lock held); False if none."""
        idle = self._idle.get(job.key)
        while idle:
            w = idle.pop()
            if not w.gone and self._send(w, job):
                return True
        return False

    def poll(self, handle: StepHandle) -> StepResult | None:
        """The result once the step ended, else None (a dict lookup: never blocks)."""
        step_dir = handle.step_dir if isinstance(handle.step_dir, Path) else Path(handle.step_dir)
        result = self._results.get(step_dir)
        if result is None and step_dir in self._jobs:
            self.pump()  # its reply may be waiting in the pipe: nobody else need read it
            result = self._results.get(step_dir)
        if result is None and step_dir not in self._jobs:
            return StepResult(ERROR, None, "reused worker lost the step",
                              finished_at=time.time())
        if result is not None:
            self._unpolled.discard(step_dir)
        return result

    def owns(self, step_dir: Path) -> bool:
        """Whether the step was launched here (running, or ended and kept)."""
        return step_dir in self._jobs or step_dir in self._results

    def cancel(self, handle: StepHandle, reason: str = "") -> None:
        """Stop the step: a queued one ends at once; a running one takes its worker with
        it (SIGTERM, SIGKILL after the grace period). Returns at once."""
        with self._lock:
            job = self._jobs.get(Path(handle.step_dir))
            if job is not None and not job.done and job.stop is None:
                self._stop(job, CANCELLED, reason or "cancelled")

    def close(self) -> None:
        """Stop every worker (their running steps end with them)."""
        with self._lock:
            if self._closed:
                return
            # no longer woken by (nor reading) the workers' ends: they are handled here
            self.completions.unwatch(self._pipes.fileno())
            self._closed = True
            workers = [w for ws in self._workers.values() for w in ws]
            self._cond.notify_all()
            self._fed.notify_all()
        for w in workers:
            w.gone = True
            w.close_stdin()
        for w in workers:
            try:
                w.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._kill(w)
        with self._lock:
            for w in workers:  # what each wrote before it went, then its end
                while not w.eof:
                    if not self._read(w, None):
                        self._eof(w)  # a leftover of its step holds the pipe: no matter
        for t in [w.reaper for w in workers] + [self._feeder]:
            if t is not None:
                t.join(timeout=5)
        self._pipes.close()

    # -- replies (read by whoever waits, polls or launches: see the module docstring)

    def _drain(self) -> list[Path]:
        """The completions' source: read the lines ready now; the steps they ended."""
        ended: list[Path] = []
        with self._lock:
            self._pump(ended)
        return ended

    def pump(self) -> None:
        """Read the lines ready now (never blocks); ends go on the completions pipe."""
        with self._lock:
            self._pump(None)

    def _pump(self, ended: list[Path] | None) -> None:
        """Read every worker that has a line or ended (lock held). The steps that ended
        go to ``ended``, or (None) on the completions pipe: the caller is not the
        controller about to take them, which may be asleep in ``wait``."""
        if self._closed:
            return
        for w in self._pipes.ready():
            self._read(w, ended)

    def _read(self, w: WorkerProc, ended: list[Path] | None) -> bool:
        """Handle the lines ``w`` wrote, and its end (lock held); False if it had none."""
        lines = w.read()
        if lines is None:
            return False
        for data in lines:
            if data.get("ready"):
                w.info = data
                w.ready.set()
                if not w.gone:
                    self._next(w)
            else:
                self._reply(w, data, ended)
        if w.eof:
            self._eof(w)
        return True

    def _eof(self, w: WorkerProc) -> None:
        """``w``'s stdout ended (lock held): it is gone; its end is handled on a thread
        of its own (reaping it, and killing what its step left, may take a while)."""
        w.gone = True
        w.ready.set()
        self._pipes.discard(w)
        w.close_stdout()
        w.reaper = self._detach(self._reap, w)

    def _reap(self, w: WorkerProc) -> None:
        self._exited(w, w.proc.wait())

    @staticmethod
    def _detach(target, w: WorkerProc) -> threading.Thread:
        """Run ``target(w)`` on a new thread (what may block: never the controller's)."""
        t = threading.Thread(target=target, args=(w,), name="chute-worker-end", daemon=True)
        t.start()
        return t

    # -- ends of steps

    def _reply(self, w: WorkerProc, data: dict, ended: list[Path] | None) -> None:
        """A step's reply (lock held)."""
        job, w.job = w.job, None
        self.cpu += float(data.get("cpu") or 0.0)
        if "tmp" in data:
            w.tmp = data["tmp"]
        if job is not None and not job.done:
            self._finish(job, reply_result(job.spec, job.stop, data), ended)
        kill = job is not None and job.stop is not None
        if data.get("retiring") or kill:
            self._retire(w)
        elif not w.gone:
            self._next(w)
        if kill:  # a stopped step that ended on its own: its worker goes all the same
            self._detach(self._kill, w)

    def _exited(self, w: WorkerProc, rc: int) -> None:
        job = w.job
        if job is not None and not job.done:
            # died mid-step: what the step left in its session dies too, before the end
            # is recorded (as a supervisor's: nothing of a step outlives its status);
            # after the grace a stop gives, for what took its SIGTERM
            grace = max(job.spec.grace_seconds, 0.0) if job.stop is not None else 0.0
            proctree.kill_step(w.pid, scan=True, grace=grace, give_up=2.0)
        if w.tmp:  # its private /tmp's directory (the mounts went with its namespace)
            shutil.rmtree(w.tmp, ignore_errors=True)
        with self._lock:
            job, w.job = w.job, None
            self._retire(w)
            if not w.info and w.key in self._usable:  # died before it was ready
                self._broken.add(w.key)
                self._usable.discard(w.key)
            if job is not None and not job.done:
                self._finish(job, exit_result(job.stop, rc))
            if self._queue.get(w.key) and w.key in self._broken:
                for queued in self._queue.pop(w.key):
                    if not queued.done:
                        self._finish(queued, StepResult(
                            ERROR, None, f"reused worker could not start (exit code {rc})",
                            finished_at=time.time()))

    def _retire(self, w: WorkerProc) -> None:
        """Take ``w`` out of the pool (lock held): it exits, or is being killed."""
        w.gone = True
        self._replacements.pop(w, None)
        workers = self._workers.get(w.key, [])
        if w in workers:
            workers.remove(w)
        idle = self._idle.get(w.key, [])
        if w in idle:
            idle.remove(w)
        if self._queue.get(w.key) and w.info:
            self._start(w.key)

    def _finish(self, job: _Job, result: StepResult, ended: list[Path] | None = None) -> None:
        """Record how ``job`` ended and tell the controller (lock held): in ``ended`` if it
        is the controller reading, else on the completions pipe."""
        job.done = True
        step_dir = job.spec.step_dir
        self._jobs.pop(step_dir, None)
        self._results[step_dir] = result
        self._unpolled.add(step_dir)
        while len(self._results) > KEEP_RESULTS:  # forget the oldest polled ones
            old = next(iter(self._results))
            if old in self._unpolled:
                break
            del self._results[old]
        if ended is None:
            self.completions.add(step_dir)
        else:
            ended.append(step_dir)

    def _feed(self) -> None:
        """Steps are queued (lock held): the feeder reads replies until none is."""
        if self._feeder is None:
            self._feeder = threading.Thread(target=self._feed_loop, daemon=True,
                                            name="chute-worker-feeder")
            self._feeder.start()
        else:
            self._fed.notify()

    def _feed_loop(self) -> None:
        # while steps wait for a worker, one that replied must get the next at once, as
        # it did with a reader thread per worker: not after the controller's turn or its
        # pause to gather ends (a ParallelFor's workers idled a third of the time)
        while True:
            with self._lock:
                while not self._closed and not any(self._queue.values()):
                    self._fed.wait()
                if self._closed:
                    return
            self._pipes.wait(0.1)
            self.pump()
