"""The fork server: a small single-threaded process that hands out step supervisors fast.

Starting a Python interpreter per supervisor costs 20-40 ms, and even forking a Python
process costs 1-2 ms here (copying its page tables). So the fork server keeps one *spare*
supervisor forked in advance, already in its own session, waiting on a pipe. A launch
hands the step directory to the spare (one pipe write), replies at once, and only then
forks the next spare, off the launch's critical path.

The controller starts this process once (``python -m chute.executors.forkserver``, exec'd,
so it never inherits the controller's threads) and talks to it over its stdin/stdout,
one JSON object per line:

request  ``{"step_dir": "...", "env": {...}}``
reply    ``{"pid": N, "create_time": T}`` or ``{"error": "..."}``

Supervisors are the fork server's children only for convenience: ``SIGCHLD`` is ignored
here so the kernel reaps them, and when the fork server exits (its stdin closes because
the controller is gone) they are re-parented and go on running; the unused spare sees
its pipe close and exits.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys

from chute.executors import proctree, sandbox, supervisor


class Spare:
    """A forked supervisor in its own session, waiting for a step directory."""

    def __init__(self) -> None:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the spare supervisor: never returns
            try:
                os.close(w)
                os.closerange(3, r)  # hold none of the fork server's fds (its protocol pipes)
                os.closerange(r + 1, 1 << 16)
                os.setsid()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                # held until Supervisor.run knows its step (a cancel then is not lost)
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
                supervisor.detach_stdio()
                sup = supervisor.Supervisor()  # prepared while idle, off the launch path
                with os.fdopen(r, "rb") as f:
                    data = f.read()
                if not data:  # the fork server went away without using us
                    os._exit(0)
                req = json.loads(data)
                code = supervisor.run_logged(sup, req["step_dir"], req.get("env"))
            except BaseException:  # noqa: BLE001 - nothing to report to; exit quietly
                code = 1
            os._exit(code)
        os.close(r)
        self.pid, self.w = pid, w
        self.create_time = proctree.create_time(pid)

    def assign(self, step_dir: str, env: dict[str, str] | None) -> dict:
        """Give this spare its step; returns the reply for the controller."""
        data = json.dumps({"step_dir": step_dir, "env": env}).encode()
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self.w, view) :]
        finally:
            os.close(self.w)
        return {"pid": self.pid, "create_time": self.create_time}

    def discard(self) -> None:
        os.close(self.w)


def serve(rfile, wfile) -> None:
    """Answer launch requests until EOF."""
    spare: Spare | None = Spare()
    for line in rfile:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            if spare is None or not proctree.same_process(spare.pid, spare.create_time):
                spare = Spare()
            reply = spare.assign(req["step_dir"], req.get("env"))
        except Exception as e:  # noqa: BLE001 - one bad request must not kill the server
            reply = {"error": f"{type(e).__name__}: {e}"}
        spare = None
        wfile.write(json.dumps(reply).encode() + b"\n")
        wfile.flush()
        try:
            spare = Spare()  # after the reply: the fork is not on the launch's path
        except OSError:
            spare = None  # e.g. EAGAIN at the process limit; the next request retries
    if spare is not None:
        spare.discard()


def main() -> None:
    """Entry point: serve requests on stdin/stdout."""
    sandbox.available()  # probe once here (it waits for a child), not in every supervisor
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps finished supervisors
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)  # nothing but replies on the protocol pipe
    os.close(null)
    # objects that exist now are never collected: forks then do not copy pages just
    # because the garbage collector touched them
    gc.freeze()
    serve(sys.stdin.buffer, out)


if __name__ == "__main__":
    main()
