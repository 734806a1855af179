"""The engine's controller, embedded in the server process on a background thread.

The server does not drive workflows itself: it starts the engine's
:class:`chute.engine.controller.Controller` with the local executor and lets it claim
whatever is submitted (through the API, or by the CLI on the same store), and ticks the
stored CronWorkflows and poll triggers while that controller holds the controller lease.
Stopping the server stops the loop and releases the leases; steps keep running under their
supervisors and the next controller re-attaches to them.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from chute.config import Settings

log = logging.getLogger("chute.server")


class EmbeddedController:
    """A controller loop on a daemon thread; ``stop()`` ends it and releases its leases."""

    def __init__(self, controller: Any, executor: Any = None, tickers: list | None = None):
        self.controller = controller
        self.executor = executor
        self.tickers = tickers or []  # cron and poll triggers, ticked under the lease
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="chute-controller", daemon=True)
        self.trigger_thread: threading.Thread | None = None
        self.error: BaseException | None = None

    @property
    def owner(self) -> str:
        """The lease owner id of the controller (runs it drives carry it)."""
        return self.controller.owner

    def _run(self) -> None:
        from chute.errors import LeaseHeldError

        try:
            self.controller.serve(self.stop_event)
        except LeaseHeldError as exc:
            # A standalone `chute controller` already drives the workflows of this store.
            self.error = exc
            log.warning("another controller holds the lease; this server serves the API "
                        "and UI and leaves running workflows to it")
        except BaseException as exc:  # noqa: BLE001 - logged; the API keeps serving
            self.error = exc
            # the type only: messages of engine errors may quote step output
            log.error("the embedded controller stopped: %s", type(exc).__name__)

    def start(self) -> EmbeddedController:
        """Start the loop thread (and the triggers' ticker, which waits for the lease)."""
        self.thread.start()
        if self.tickers:
            from chute.triggers.runner import start_thread

            self.trigger_thread = start_thread(
                self.tickers, self.stop_event,
                may_tick=lambda: self.controller.named_lease is not None)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop and release the controller's leases."""
        self.stop_event.set()
        self.thread.join(timeout=timeout)
        if self.trigger_thread is not None:
            self.trigger_thread.join(timeout=timeout)
        try:
            self.controller.close()
        except Exception:  # noqa: BLE001 - shutting down; leases expire anyway
            log.warning("could not release controller leases cleanly")
        if self.executor is not None:
            self.executor.close()  # the fork server; running steps keep going


def start_embedded(settings: Settings, store: Any) -> EmbeddedController:
    """Create the engine's controller with the Python executor (warm SDK steps, every
    other step a process) and run it in a thread."""
    from chute.engine.controller import Controller
    from chute.executors.python import PythonExecutor
    from chute.triggers.runner import tickers_for

    executor = PythonExecutor()  # SDK steps on warm zygotes (or reused workers); others as processes
    controller = Controller(store, settings, executor, poll_interval=0.05)
    return EmbeddedController(controller, executor, tickers_for(store, settings)).start()
