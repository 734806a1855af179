"""The fork server: a small single-threaded process that hands out step supervisors fast.

Starting a Python interpreter per supervisor costs 20-40 ms, and even forking one costs
1-2 ms of CPU here, plus 2-3 ms of page faults in the child as it first touches memory.
So the fork server keeps a pool of supervisor processes (:class:`Worker`), each forked
into its own session and already prepared, waiting on a pipe for a step directory:

* a launch hands the step to an idle worker (one pipe write) and replies at once;
* when a worker has written its step's ``status.json`` it says so on a shared pipe, and
  the fork server passes it on to the controller at once (a ``done`` reply), so the
  controller learns of the end of a step without polling for it; once the worker has
  cleaned up after the step it reports itself idle on the same pipe and may be handed
  another step; so a busy controller mostly reuses warm processes, and the fork of a new
  spare happens only when none is idle, after the reply (off the launch's critical path);
* a worker retires after :data:`MAX_STEPS` steps, beyond :data:`MAX_IDLE` idle ones, on
  SIGTERM, or when the fork server is gone (its pipe closes).

The controller starts this process once (``python -m chute.executors.forkserver``, exec'd,
so it never inherits the controller's threads) and talks to it over its stdin/stdout,
one JSON object per line:

request  ``{"step_dir": "...", "env": {...}}``
reply    ``{"step_dir": "...", "pid": N, "create_time": T}`` or ``{"step_dir": ..., "error": "..."}``
done     ``{"step_dir": "...", "done": true}``: its ``status.json`` is written (a hint only: the
         file is the record, read by the controller, and a controller started after this
         one was killed finds it without any hint)

Requests are pipelined: the controller does not wait for a reply before the next one.

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

from chute.executors import proctree, sandbox, supervisor

MAX_STEPS = 1000  # steps one worker runs before it retires (bounds any slow leak)
MAX_IDLE = 16  # idle workers kept (each holds a few MB of its own); more are retired
DONE, IDLE = b"d", b"i"  # a worker's reports on the shared pipe: "<kind> <pid>\n"


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
                low, high = sorted((r, idle_w))
                os.closerange(3, low)
                os.closerange(low + 1, high)
                os.closerange(high + 1, 1 << 16)
                code = _worker_main(r, idle_w)
            finally:
                os._exit(code)
        os.close(r)
        self.pid, self.w = pid, w
        self.create_time = proctree.create_time(pid)
        self.step_dir: str | None = None  # the step it runs now

    def assign(self, step_dir: str, env: dict[str, str] | None) -> dict:
        """Give this worker a step; returns the reply for the controller (OSError if dead)."""
        data = json.dumps({"step_dir": step_dir, "env": env}).encode() + b"\n"
        view = memoryview(data)
        while view:
            view = view[os.write(self.w, view) :]
        self.step_dir = step_dir
        return {"pid": self.pid, "create_time": self.create_time}

    def alive(self) -> bool:
        return proctree.same_process(self.pid, self.create_time)

    def close(self) -> None:
        """Close its pipe: an idle worker then exits."""
        try:
            os.close(self.w)
        except OSError:
            pass


def _worker_main(r: int, idle_w: int) -> int:
    """Body of a worker process: prepare once, then run the steps it is handed."""
    os.setsid()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    # a cancel is held until Supervisor.run knows which step it is for
    signal.pthread_sigmask(signal.SIG_BLOCK, {supervisor.CANCEL_SIGNAL})
    supervisor.detach_stdio()
    sup = SUPERVISOR()  # prepared while idle, off the launch path
    pid = str(os.getpid()).encode() + b"\n"
    done, idle = DONE + b" " + pid, IDLE + b" " + pid

    def report(what: bytes) -> None:
        os.write(idle_w, what)  # one short write: atomic on a pipe

    def on_status() -> None:
        try:
            report(done)
        except OSError:
            pass  # nobody to tell: the file says it all the same

    sup.on_status = on_status
    with os.fdopen(r, "rb") as requests:
        for n in range(MAX_STEPS):
            line = requests.readline()
            if not line:
                return 0  # the fork server retired us or went away
            req = json.loads(line)
            code = supervisor.run_logged(sup, req["step_dir"], req.get("env"))
            if code != 0 or sup.retire or n == MAX_STEPS - 1:
                return 0  # without offering ourselves again: no request is handed to us
            try:
                report(idle)
            except OSError:
                return 0  # nobody to report to: the fork server is gone
    return 0


SUPERVISOR = supervisor.Supervisor  # the zygote runs WarmSupervisors instead


class Pool:
    """The fork server's workers: idle ones by pid order of return, busy ones by pid."""

    def __init__(self) -> None:
        self.idle_r, self.idle_w = os.pipe()
        os.set_blocking(self.idle_r, False)
        self.idle: list[Worker] = []
        self.busy: dict[int, Worker] = {}
        self.partial = b""  # a report cut by a read
        self.launches = 0

    def assign(self, step_dir: str, env: dict[str, str] | None) -> dict:
        """Hand a step to an idle worker (forking one if none is idle)."""
        while self.idle:
            worker = self.idle.pop()  # the most recently used: its pages are warm
            if not worker.alive():
                worker.close()
                continue
            try:
                reply = worker.assign(step_dir, env)
            except OSError:  # it died just now
                worker.close()
                continue
            self.busy[worker.pid] = worker
            return reply
        worker = Worker(self.idle_w)
        reply = worker.assign(step_dir, env)
        self.busy[worker.pid] = worker
        return reply

    def on_reports(self) -> list[str]:
        """Read the workers' reports: move idle ones back to the idle list; the step
        directories whose status.json was just written."""
        try:
            data = self.partial + os.read(self.idle_r, 65536)
        except BlockingIOError:
            return []
        *lines, self.partial = data.split(b"\n")
        done = []
        for line in lines:
            kind, _, pid = line.partition(b" ")
            worker = self.busy.get(int(pid)) if pid.isdigit() else None
            if worker is None:
                continue
            if kind == DONE:
                if worker.step_dir is not None:
                    done.append(worker.step_dir)
                continue
            del self.busy[worker.pid]
            worker.step_dir = None
            if len(self.idle) < MAX_IDLE:
                self.idle.append(worker)
            else:
                worker.close()
        return done

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
                    _tell_done(pool.on_reports(), wfile)
                    continue
                data = os.read(rfd, 65536)
                if not data:
                    return
                # workers that finished just now can take these requests
                _tell_done(pool.on_reports(), wfile)
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        _answer(pool, line, wfile)
                        pool.refill()  # after the reply: the fork is off the launch's path
    finally:
        pool.close()


def _tell_done(step_dirs: list[str], wfile) -> None:
    """Tell the controller these steps' status.json files are written."""
    if step_dirs:
        wfile.write(b"".join(json.dumps({"step_dir": d, "done": True}).encode() + b"\n"
                             for d in step_dirs))
        wfile.flush()


def _answer(pool: Pool, line: bytes, wfile) -> None:
    step_dir = None
    try:
        req = json.loads(line)
        step_dir = req["step_dir"]
        reply = pool.assign(step_dir, req.get("env"))
    except Exception as e:  # noqa: BLE001 - one bad request must not kill the server
        reply = {"error": f"{type(e).__name__}: {e}"}
    reply["step_dir"] = step_dir
    wfile.write(json.dumps(reply).encode() + b"\n")
    wfile.flush()


def main() -> None:
    """Entry point: serve requests on stdin/stdout."""
    sandbox.available()  # probe once here (it waits for a child), not in every supervisor
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
