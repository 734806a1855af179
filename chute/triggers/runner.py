"""The triggers' loop: the cron schedules and the poll triggers, ticked about once a second
on a thread of the long-lived controller (``chute controller`` or ``chute server``), only
while that process holds the controller lease."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger("chute.triggers")


class Ticker(Protocol):
    """Something the loop ticks: decides what is due now."""

    def tick(self) -> Any: ...


def tickers_for(store: Any, settings: Any) -> list[Ticker]:
    """The cron scheduler and the poll scheduler of ``store``."""
    from chute.secrets import SecretStore
    from chute.triggers.cron import CronScheduler
    from chute.triggers.polling import PollScheduler

    return [CronScheduler(store, logs_dir=settings.logs_dir, steps_dir=settings.steps_dir),
            PollScheduler(store, secrets=SecretStore(settings.secrets_dir))]


def serve(tickers: list[Ticker], stop: threading.Event, every: float = 1.0,
          may_tick: Callable[[], bool] = lambda: True) -> None:
    """Tick each of ``tickers`` every ``every`` seconds until ``stop`` is set, whenever
    ``may_tick()``. A failed tick is logged and tried again at the next one."""
    while True:
        if may_tick():
            for t in tickers:
                try:
                    t.tick()
                except Exception as exc:  # noqa: BLE001 - the next tick retries
                    log.error("%s tick failed: %s: %s", type(t).__name__,
                              type(exc).__name__, exc)
        if stop.wait(every):
            return


def start_thread(tickers: list[Ticker], stop: threading.Event, *, every: float = 1.0,
                 may_tick: Callable[[], bool] = lambda: True) -> threading.Thread:
    """Run :func:`serve` on a daemon thread (the controller's companion)."""
    t = threading.Thread(target=serve, args=(tickers, stop, every, may_tick),
                         name="chute-triggers", daemon=True)
    t.start()
    return t
