"""``chute controller``: the standalone controller, alone or as a parent of N workers.

``chute controller`` drives every submitted workflow in one process, and ticks the
stored CronWorkflows and poll triggers (:mod:`chute.triggers.runner`) while it holds the
controller lease. With ``--workers N``
(N > 1) the process holds the named lease ``controller`` (so a second ``chute controller``
is still refused, R-4) and starts N worker processes; each runs its own controller loop and
executor and claims workflows nobody holds with ``SELECT … FOR UPDATE SKIP LOCKED`` on
PostgreSQL (RELIABILITY D-2). A worker that dies is restarted; the workflows it held are
adopted by a worker once their leases expire, as after any controller crash. A worker
stops when its parent is gone or no longer holds the lease.

On SQLite several workers are allowed and correct (``BEGIN IMMEDIATE`` serialises their
claims and commits) but add little: SQLite has one writer at a time. Use PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Annotated

import typer

from chute.errors import LeaseHeldError

CLAIM_BATCH = 8  # workflows a worker claims per pass, so that workers share the load
RESTART_DELAY = 1.0  # seconds before a dead worker is started again


def controller_cmd(
    workers: Annotated[int, typer.Option(
        "--workers", min=1, max=64,
        help="worker processes driving workflows (each claims its own; best on PostgreSQL)",
    )] = 1,
    worker_of: Annotated[str | None, typer.Option("--worker-of", hidden=True)] = None,
    parent_pid: Annotated[int | None, typer.Option("--parent-pid", hidden=True)] = None,
) -> None:
    """Run the standalone controller (refuses if another one holds the lease)."""
    from chute.cli.workflows import _store, lease_ttl
    from chute.engine.controller import Controller
    from chute.executors.python import PythonExecutor

    store, settings = _store()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if worker_of:
        _check_parent(store, worker_of)
        threading.Thread(target=_watch_parent, args=(store, worker_of, parent_pid, stop,
                                                     lease_ttl()), daemon=True).start()
    executor = PythonExecutor().start() if workers == 1 else None
    ctl = Controller(store, settings, executor, lease_ttl=lease_ttl())
    if not worker_of:  # the process holding the controller lease runs the triggers
        _start_triggers(store, settings, ctl, stop)
    try:
        if worker_of:
            ctl.serve(stop, claim_every=0.5, exclusive=False, claim_limit=CLAIM_BATCH)
        elif workers == 1:
            ctl.serve(stop)
        else:
            ctl.acquire_controller_lease()
            ctl.start_heartbeat()
            _supervise(ctl, workers, stop)
    except LeaseHeldError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()  # the triggers' ticker too
        ctl.close()
        if executor is not None:
            executor.close()


def _start_triggers(store, settings, ctl, stop: threading.Event) -> None:
    """Tick the CronWorkflows and poll triggers on a thread, only while ``ctl`` holds the
    controller lease (an occasion's idempotency key keeps a second ticker harmless, but
    one is enough)."""
    from chute.triggers.runner import start_thread, tickers_for

    start_thread(tickers_for(store, settings), stop,
                 may_tick=lambda: ctl.named_lease is not None)


def _spawn(owner: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "chute.cli.app", "controller",
                             "--worker-of", owner, "--parent-pid", str(os.getpid())])


def _supervise(ctl, n: int, stop: threading.Event) -> None:
    """Keep ``n`` workers running while we hold the lease; stop them when told to."""
    procs = [_spawn(ctl.owner) for _ in range(n)]
    try:
        while not stop.wait(RESTART_DELAY):
            if ctl.named_lease is None:
                raise LeaseHeldError("lost the controller lease (another controller took it)")
            for i, p in enumerate(procs):
                if p.poll() is not None:
                    typer.echo(f"controller worker {p.pid} exited with code {p.returncode}; "
                               "starting another", err=True)
                    procs[i] = _spawn(ctl.owner)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _check_parent(store, owner: str) -> None:
    from chute.store import leases

    with store.read() as s:
        holder = leases.lease_holder(s, "controller", time.time())
    if holder is None or holder.owner != owner:
        raise LeaseHeldError("--worker-of: this worker's controller does not hold the "
                             "controller lease (workers are started by `chute controller "
                             "--workers N`)")


def _watch_parent(store, owner: str, parent: int | None, stop: threading.Event,
                  ttl: float) -> None:
    """Stop the worker when its parent exits (even before this worker started: the
    parent's pid comes on the command line) or loses the controller lease."""
    parent = parent or os.getppid()
    while True:
        if os.getppid() != parent:
            stop.set()
            return
        if stop.wait(min(0.5, ttl / 3)):
            return
        try:
            _check_parent(store, owner)
        except LeaseHeldError:
            stop.set()
        except Exception:  # noqa: BLE001, S110 - a failed check is retried; the lease guards
            pass


def register(app: typer.Typer) -> None:
    """Add ``chute controller`` to the app."""
    app.command("controller")(controller_cmd)
