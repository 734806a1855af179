"""The fork server: a small single-threaded process that hands out step supervisors fast.

Starting a Python interpreter per supervisor costs 20-40 ms, and even forking one costs
1-2 ms of CPU here, plus 2-3 ms of page faults in the child as it first touches memory.
So the fork server keeps a pool of supervisor processes (:class:`Worker`), each forked
into its own session and already prepared, waiting on a pipe for a step directory:

* a launch hands the step to an idle worker (one pipe write) and replies at once;
* when a worker has written its step's ``status.json`` it tells the controller at once,
  writing the step directory on the controller's *notify pipe* (inherited from the fork
  server, see below), so the controller learns of the end of a step without polling and
  without a hop through this process; once it has cleaned up after the step it reports
  itself idle again on a shared pipe and may be handed another step; so a busy controller mostly reuses warm
  processes, and the fork of a new spare happens only when none is idle, after the reply
  (off the launch's critical path);
* a worker retires after :data:`MAX_STEPS` steps, beyond :data:`MAX_IDLE` idle ones, on
  SIGTERM, or when the fork server is gone (its pipe closes).

The controller starts this process once (``python -m chute.executors.forkserver``, exec'd,
so it never inherits the controller's threads) and talks to it over its stdin/stdout,
one JSON object per line:

request  ``{"step_dir": "...", "env": {...}}``
reply    ``{"step_dir": "...", "pid": N, "create_time": T}`` or ``{"step_dir": ..., "error": "..."}``

Requests are pipelined: the controller does not wait for a reply before the next one.

The notify pipe: the controller passes the write end of a pipe as the descriptor named by
``CHUTE_NOTIFY_FD``; workers write ``<step_dir>\n`` on it (one write, atomic on a pipe)
right after the rename of ``status.json``. It is non-blocking: a full pipe (a controller
that does not read it) drops the report, never stalls a supervisor. The reports are
hints: the step directory is the record, and a controller polls every attempt now and
then anyway (a supervisor killed before it could report, an attempt adopted from an
earlier controller).

Workers are the fork server's children only for convenience: ``SIGCHLD`` is ignored here
so the kernel reaps them, and when the fork server exits (its stdin closes because the
controller is gone) busy workers finish their step, find nobody to report to, and exit.
"""

from __future__ import annotations

import gc
import json
import os
import select
import signal
import sys
import time
from pathlib import Path

from chute.executors import mounts, proctree, stepfiles, supervisor
from chute.executors.base import ERROR, StepResult

MAX_STEPS = 1000  # steps one worker runs before it retires (bounds any slow leak)
MAX_IDLE = 16  # idle workers kept (each holds a few MB of its own); more are retired
NOTIFY_ENV = "CHUTE_NOTIFY_FD"
NOTIFY_FD: int | None = None  # the controller's notify pipe (write end), if it gave one


class Worker:
    """A forked supervisor process in its own session, taking steps over a pipe."""

    def __init__(self, idle_w: int) -> None:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker: never returns
            code = 1
            try:
                os.close(w)
                # hold none of the fork server's fds (protocol pipes, other workers' pipes)
                _close_all_but({r, idle_w, NOTIFY_FD})
                code = _worker_main(r, idle_w)
            finally:
                os._exit(code)
        os.close(r)
        self.pid, self.w = pid, w
        self.create_time = proctree.create_time(pid)

    def assign(self, request: bytes) -> dict:
        """Give this worker a step (the controller's request line, passed on as it is);
        returns the reply for the controller (OSError if the worker is dead)."""
        view = memoryview(request.rstrip(b"\n") + b"\n")
        while view:
            view = view[os.write(self.w, view) :]
        return {"pid": self.pid, "create_time": self.create_time}

    def alive(self) -> bool:
        return proctree.same_process(self.pid, self.create_time)

    def close(self) -> None:
        """Close its pipe: an idle worker then exits."""
        try:
            os.close(self.w)
        except OSError:
            pass


def _close_all_but(keep: set[int | None]) -> None:
    """Close every descriptor from 3 up except those in ``keep``."""
    low = 3
    for fd in sorted(k for k in keep if k is not None and k >= 3):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 16)


def notifier(fd: int | None):
    """A Supervisor.on_status callback writing the step directory on the notify pipe."""
    if fd is None:
        return None

    def notify(step_dir: Path) -> None:
        try:
            os.write(fd, os.fsencode(step_dir) + b"\n")
        except OSError:
            pass  # full (EAGAIN) or nobody reading (EPIPE): the file says it all the same

    return notify


def _worker_main(r: int, idle_w: int) -> int:
    """Body of a worker process: prepare once, then run the steps it is handed."""
    os.setsid()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    # a cancel is held until Supervisor.run knows which step it is for
    signal.pthread_sigmask(signal.SIG_BLOCK, {supervisor.CANCEL_SIGNAL})
    supervisor.detach_stdio()
    sup = SUPERVISOR()  # prepared while idle, off the launch path
    sup.on_status = notifier(NOTIFY_FD)
    me = str(os.getpid()).encode() + b"\n"
    with os.fdopen(r, "rb") as requests:
        for n in range(MAX_STEPS):
            line = requests.readline()
            if not line:
                return 0  # the fork server retired us or went away
            try:  # the fork server read only its step_dir
                req = json.loads(line)
                step_dir = req["step_dir"]
            except (ValueError, KeyError, TypeError) as e:
                req = None
                _refuse(sup, line, e)
            code = 0 if req is None else supervisor.run_logged(sup, step_dir, req.get("env"),
                                                                req.get("spec"))
            if code != 0 or sup.retire or n == MAX_STEPS - 1:
                return 0  # without offering ourselves again: no request is handed to us
            try:
                os.write(idle_w, me)  # one short write: atomic on a pipe
            except OSError:
                return 0  # nobody to report to: the fork server is gone
    return 0


def _refuse(sup: supervisor.Supervisor, line: bytes, error: Exception) -> None:
    """A request the fork server handed out whose rest does not parse (the controller
    sends none such): its step ends at once as an ERROR, as when no supervisor can start,
    rather than wait on a worker that took it and runs nothing."""
    try:
        step_dir = Path(_step_dir(line))
        if not stepfiles.claim(step_dir, sup.me):
            return  # taken by a supervisor: its end is that one's to record
        message = f"could not start supervisor: unreadable request: {error}"
        stepfiles.write_json_atomic(
            step_dir / stepfiles.STATUS,
            stepfiles.result_to_json(StepResult(ERROR, None, message, finished_at=time.time())),
            sync=False,
        )
    except Exception:  # noqa: BLE001 - no step directory to report in
        return
    if sup.on_status is not None:
        sup.on_status(step_dir)


SUPERVISOR = supervisor.Supervisor  # the zygote runs WarmSupervisors instead
# called with each request line after it was handed out and answered, before the pool forks
# a spare (the zygote compiles step scripts there, so that later workers inherit the code)
AFTER_REQUEST = None


class Pool:
    """The fork server's workers: idle ones by pid order of return, busy ones by pid."""

    def __init__(self) -> None:
        self.idle_r, self.idle_w = os.pipe()
        os.set_blocking(self.idle_r, False)
        self.idle: list[Worker] = []
        self.busy: dict[int, Worker] = {}
        self.launches = 0

    def assign(self, request: bytes) -> dict:
        """Hand a step to an idle worker (forking one if none is idle)."""
        while self.idle:
            worker = self.idle.pop()  # the most recently used: its pages are warm
            try:  # a dead worker's pipe has no reader left: EPIPE
                reply = worker.assign(request)
            except OSError:  # it died just now
                worker.close()
                continue
            self.busy[worker.pid] = worker
            return reply
        worker = Worker(self.idle_w)
        reply = worker.assign(request)
        self.busy[worker.pid] = worker
        return reply

    def on_idle(self) -> None:
        """Read 'I am idle' reports and move those workers back to the idle list."""
        try:
            data = os.read(self.idle_r, 65536)
        except BlockingIOError:
            return
        for pid in map(int, data.split()):
            worker = self.busy.pop(pid, None)
            if worker is None:
                continue
            if len(self.idle) < MAX_IDLE:
                self.idle.append(worker)
            else:
                worker.close()

    def refill(self) -> None:
        """Keep one spare ready, and forget busy workers that died (every 100 launches)."""
        self.launches += 1
        if self.launches % 100 == 0:
            for pid in [p for p, w in self.busy.items() if not w.alive()]:
                self.busy.pop(pid).close()
        if not self.idle:
            try:
                self.idle.append(Worker(self.idle_w))
            except OSError:
                pass  # e.g. EAGAIN at the process limit; the next launch forks again

    def close(self) -> None:
        for worker in [*self.idle, *self.busy.values()]:
            worker.close()


def serve(rfd: int, wfile) -> None:
    """Answer launch requests on ``rfd`` until EOF."""
    pool = Pool()
    pool.refill()
    poller = select.poll()
    poller.register(rfd, select.POLLIN)
    poller.register(pool.idle_r, select.POLLIN)
    buf = b""
    try:
        while True:
            for fd, _ in poller.poll():
                if fd == pool.idle_r:
                    pool.on_idle()
                    continue
                data = os.read(rfd, 65536)
                if not data:
                    return
                pool.on_idle()  # workers that finished just now can take these requests
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        if _answer(pool, line, wfile) and AFTER_REQUEST is not None:
                            AFTER_REQUEST(line)  # before the refill: the new spare inherits it
                        pool.refill()  # after the reply: the fork is off the launch's path
    finally:
        pool.close()


def _answer(pool: Pool, line: bytes, wfile) -> bool:
    """Hand the request to a worker and reply; whether it was handed out."""
    step_dir = None
    try:
        step_dir = _step_dir(line)
        reply = pool.assign(line)
    except Exception as e:  # noqa: BLE001 - one bad request must not kill the server
        reply = {"error": f"{type(e).__name__}: {e}"}
    reply["step_dir"] = step_dir
    wfile.write(json.dumps(reply).encode() + b"\n")
    wfile.flush()
    return "error" not in reply


_PREFIX = b'{"step_dir": "'


def _step_dir(line: bytes) -> str:
    """The request's step directory. The controller writes it first, so it is read off the
    start of the line when it needs no unescaping; the rest (10-15 kB: the environment and
    launch.json) is the worker's to parse, and parsing it here too cost ~50 us a step."""
    if line.startswith(_PREFIX):
        end = line.find(b'"', len(_PREFIX))
        if end > 0 and b"\\" not in line[len(_PREFIX) : end]:
            return line[len(_PREFIX) : end].decode()
    step_dir = json.loads(line)["step_dir"]
    if not isinstance(step_dir, str):
        raise TypeError(f"step_dir is not a string: {step_dir!r}")
    return step_dir


def take_notify_fd() -> None:
    """Note the notify pipe the controller passed (and keep its name from the steps)."""
    global NOTIFY_FD
    value = os.environ.pop(NOTIFY_ENV, "")
    NOTIFY_FD = int(value) if value.isdigit() else None


def main() -> None:
    """Entry point: serve requests on stdin/stdout."""
    take_notify_fd()
    mounts.available()  # probe once here (it waits for a child), not in every supervisor
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps exited workers
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)  # nothing but replies on the protocol pipe
    os.close(null)
    # objects that exist now are never collected: forks then do not copy pages just
    # because the garbage collector touched them
    gc.freeze()
    serve(sys.stdin.fileno(), out)


if __name__ == "__main__":
    main()
