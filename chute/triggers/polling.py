"""Triggers that look for their occasions: DataTrigger (:mod:`chute.triggers.data`) and
MetricTrigger (:mod:`chute.triggers.metric`). Store them (create, list, get, delete) and
poll them (:class:`PollScheduler`, ticked by the controller beside the cron schedules).

Each poll finds the trigger's occasions after its watermark, drops those whose key already
made a run (one query), submits the rest through ``submit_once`` under their key, and
moves the watermark forward. A crash between submitting and recording only means the
next poll finds those occasions again, and their keys return the runs already made.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update

from chute.errors import ConflictError, SpecError, UserError
from chute.secrets import SecretStore
from chute.store.db import Store
from chute.store.models import WorkflowRow
from chute.store.models_triggers import PollTriggerRow
from chute.triggers import data, metric, stored
from chute.triggers import target as T

log = logging.getLogger("chute.triggers.polling")
KINDS = {"DataTrigger": data, "MetricTrigger": metric}
DATA_LOOKBACK = 60.0  # seconds of modification times looked at again (late, older files)


def parse(doc: Any, source: str | None = None):
    """A DataTrigger or MetricTrigger from parsed YAML/JSON, or SpecError."""
    kind = doc.get("kind") if isinstance(doc, dict) else None
    if kind not in KINDS:
        raise SpecError(f"kind: expected one of {', '.join(KINDS)}, got {kind!r}", source)
    return KINDS[kind].parse(doc, source)


def create(store: Store, doc: Any, *, source: str | None = None,
           now: float | None = None):
    """Check and store a trigger; ConflictError if the name is taken. Only occasions after
    its creation count: files modified later, metric rows reported later."""
    trig = parse(doc, source)
    kind, name = trig.kind, trig.metadata.name
    T.check_target(store, trig.spec, name, KINDS[kind].LABEL, source)
    now = time.time() if now is None else now
    with store.write() as s:
        if s.get(PollTriggerRow, name) is not None:
            raise ConflictError(f"trigger {name!r} already exists")
        if kind == "DataTrigger":
            state: dict[str, Any] = {"after": now}
        else:
            last = metric.last_id(s)
            state = {"after": last, "start": last}
        s.add(PollTriggerRow(name=name, kind=kind, namespace=trig.metadata.namespace
                             or "default", spec=trig.model_dump(mode="json", exclude_none=True),
                             created_at=now, state=state))
    return trig


def get(store: Store, name: str) -> PollTriggerRow:
    """The stored trigger ``name``, or NotFoundError."""
    return stored.get(store, PollTriggerRow, name, "trigger")


def list_all(store: Store) -> list[PollTriggerRow]:
    """Every stored trigger, by name."""
    return stored.list_all(store, PollTriggerRow)


def delete(store: Store, name: str) -> None:
    """Delete trigger ``name`` (its runs stay)."""
    stored.delete(store, PollTriggerRow, name, "trigger")


def view(row: PollTriggerRow) -> dict[str, Any]:
    """The resource with a ``status``: watermark, last poll, last error."""
    status: dict[str, Any] = {"state": row.state, "polledAt": row.polled_at}
    if row.message:
        status["message"] = row.message
    return {**row.spec, "status": status}


class PollScheduler:
    """Polls each stored trigger every ``spec.pollSeconds``; safe in several processes."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time,
                 secrets: SecretStore | None = None):
        self.store = store
        self.clock = clock
        self.secrets = secrets

    def tick(self, force: bool = False) -> list[tuple[str, str, bool]]:
        """Poll the triggers that are due (all with ``force``); (trigger, run, created)."""
        now = self.clock()
        out: list[tuple[str, str, bool]] = []
        for row in list_all(self.store):
            try:
                trig = parse(row.spec)
            except UserError as exc:  # one unreadable trigger must not stop the others
                log.error("trigger %s: %s", row.name, exc)
                continue
            due = row.polled_at is None or now - row.polled_at >= trig.spec.pollSeconds
            if force or due:
                out += self.poll(row, trig, now)
        return out

    def poll(self, row: PollTriggerRow, trig, now: float) -> list[tuple[str, str, bool]]:
        """Find, submit and record one trigger's new occasions."""
        name = row.name
        error: str | None = None
        try:
            if row.kind == "DataTrigger":
                found = data.arrivals(trig, row.state["after"], now, self.secrets)
                newest = max([row.state["after"], *(a.mtime - DATA_LOOKBACK for a in found)])
                state = {"after": max(newest, row.created_at)}
            else:
                with self.store.read() as s:
                    start = int(row.state.get("start", 0))
                    found, last, error = metric.readings(s, trig, int(row.state["after"]),
                                                         start)
                state = {"after": last, "start": start}
        except (UserError, OSError) as exc:
            self._record(name, row.state, now, f"{type(exc).__name__}: {exc}"
                         if isinstance(exc, OSError) else str(exc))
            return []
        keys = {o.key(name): o for o in found}
        with self.store.read() as s:  # occasions that already made their run
            done = set(s.scalars(select(WorkflowRow.idempotency_key)
                                 .where(WorkflowRow.idempotency_key.in_(list(keys)))))
        out = []
        for key, occasion in keys.items():
            if key in done:
                continue
            try:
                run, created = T.fire(self.store, trig.spec, name, KINDS[row.kind].LABEL,
                                      occasion.event(), key, f"{row.kind}/{name}")
            except UserError as exc:  # recorded; the watermark still moves past it
                log.warning("trigger %s: %s", name, exc)
                error = str(exc)
                continue
            out.append((name, run.name, created))
        self._record(name, state, now, error)
        return out

    def _record(self, name: str, state: dict, now: float, message: str | None) -> None:
        with self.store.write() as s:
            s.execute(update(PollTriggerRow).where(PollTriggerRow.name == name)
                      .values(state=state, polled_at=now, message=message))
