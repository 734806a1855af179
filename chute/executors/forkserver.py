"""The fork server: a small single-threaded process that forks step supervisors cheaply.

Starting a Python interpreter per supervisor costs 20-40 ms; forking an interpreter that
has already imported the supervisor costs well under one. The controller starts this
process once (``python -m chute.executors.forkserver``, exec'd, so it never inherits the
controller's threads) and talks to it over its stdin/stdout, one JSON object per line:

request  ``{"step_dir": "...", "env": {...}}``
reply    ``{"pid": N, "create_time": T}`` or ``{"error": "..."}``

Each launch is a double fork: the first child calls ``setsid`` and forks the supervisor,
writes ``supervisor.pid`` (pid and create time) and exits, so the supervisor is
re-parented away from both the fork server and the controller and survives them.
The fork server exits when its stdin closes (the controller is gone).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from chute.executors import proctree, sandbox, supervisor


def spawn(step_dir: str, env: dict[str, str] | None) -> dict:
    """Double-fork a detached supervisor for ``step_dir``; return its pid and create time."""
    r, w = os.pipe()
    pid1 = os.fork()
    if pid1 == 0:
        code = 0
        try:
            os.close(r)
            # the supervisor must hold none of the fork server's fds (its protocol pipes)
            os.closerange(3, w)
            os.closerange(w + 1, 1 << 16)
            os.setsid()
            pid2 = os.fork()
            if pid2 == 0:
                os.close(w)
                os._exit(supervisor.supervise(step_dir, env))
            reply = {"pid": pid2, "create_time": proctree.create_time(pid2)}
            supervisor.write_json_atomic(Path(step_dir) / supervisor.PIDFILE, reply, sync=False)
        except BaseException as e:  # noqa: BLE001 - reported to the controller
            reply = {"error": f"{type(e).__name__}: {e}"}
            code = 1
        try:
            os.write(w, json.dumps(reply).encode())
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid1, 0)
    try:
        return json.loads(data)
    except ValueError:
        return {"error": "supervisor launcher died"}


def serve(rfile, wfile) -> None:
    """Answer launch requests until EOF."""
    for line in rfile:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            reply = spawn(req["step_dir"], req.get("env"))
        except Exception as e:  # noqa: BLE001 - one bad request must not kill the server
            reply = {"error": f"{type(e).__name__}: {e}"}
        wfile.write(json.dumps(reply).encode() + b"\n")
        wfile.flush()


def main() -> None:
    """Entry point: serve requests on stdin/stdout."""
    sandbox.available()  # probe once here, not in every supervisor
    out = os.fdopen(os.dup(1), "wb")
    # the supervisors' stdio is re-pointed by supervise(); keep ours off the protocol pipe
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)
    serve(sys.stdin.buffer, out)


if __name__ == "__main__":
    main()
