"""The cron scheduler: turns the due slots of stored CronWorkflows into workflow runs.

Each :meth:`CronScheduler.tick` looks, for every CronWorkflow, at the slots after its
``checked_through`` up to now, decides each one, then moves ``checked_through`` to the
last of them, so a restart neither repeats nor forgets a slot. A slot becomes a run
through :func:`chute.engine.submit.submit_once` with the idempotency key
``cron:<uid>:<slot RFC 3339>`` and Argo's name ``<cron>-<unix slot>``: however many
schedulers tick the same slot at once (threads, processes, a controller that crashed
after submitting and before recording), it makes exactly one run (RELIABILITY D-3).

Which slots run, as Argo's cron operator decides them:

- a slot at most ``grace`` seconds old is on time and runs;
- older slots were *missed* (the scheduler was down). Argo runs only the latest missed
  slot, and only if ``startingDeadlineSeconds`` is set and has not passed since it.
  chute keeps that as the default and adds the annotation ``chute.dev/catch-up: "N"``:
  the N most recent missed slots run (N=0: none), each still only within
  ``startingDeadlineSeconds`` when that is set;
- ``spec.suspend``: due slots are skipped (and not run after ``resume``);
- ``spec.when`` (``{{cronworkflow.*}}`` substituted, then a govaluate condition): a slot
  runs only when it is true; ``spec.stopStrategy.expression`` (expr-lang over
  ``cronworkflow.failed``/``succeeded``/...): once true, the CronWorkflow is labelled
  ``workflows.argoproj.io/cron-completed`` and runs no more (Argo's Stopped phase);
- ``concurrencyPolicy``: ``Allow`` (default) runs regardless; ``Forbid`` skips a slot
  while a run of this CronWorkflow is Pending or Running; ``Replace`` terminates those
  runs (as ``chute terminate``) and runs the slot.

``successfulJobsHistoryLimit``/``failedJobsHistoryLimit`` delete the oldest finished runs
beyond them, as in Argo, but only when set in the spec: a local store keeps history
unless asked not to (Argo's defaults are 3 and 1).

Time comes from ``clock`` (epoch seconds), so tests move it instead of sleeping.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import or_, update

from chute.engine import control
from chute.engine import phases as P
from chute.engine.submit import submit_once
from chute.errors import ConflictError, NotFoundError, UserError
from chute.spec.loader import load_resource
from chute.store import queries as q
from chute.store.db import Store
from chute.store.models_triggers import CronWorkflowRow
from chute.triggers import crons
from chute.triggers.schedule import slot_iso, slots_between

log = logging.getLogger("chute.triggers.cron")

DEFAULT_GRACE = 30.0  # seconds a slot may be late and still count as on time (2 lease TTLs)


@dataclass(frozen=True)
class Decision:
    """What a tick did with one slot: the run it made (or found), or why none."""

    cron: str
    slot: float
    workflow: str | None = None
    created: bool = False
    skipped: str | None = None  # missed|suspended|stopped|when|Forbid|error: <message>


def missed_to_run(missed: list[float], catch_up: int | None, deadline: int | None,
                  now: float) -> list[float]:
    """Which missed slots (ascending) run: the ``catch_up`` most recent (Argo when None:
    the latest, only with a ``startingDeadlineSeconds``) that are within the deadline."""
    if deadline is not None:
        missed = [s for s in missed if now < s + deadline]
    if catch_up is None:
        catch_up = 1 if deadline is not None else 0
    return missed[-catch_up:] if catch_up else []


class CronScheduler:
    """Ticks every stored CronWorkflow; safe to run in several processes at once."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time,
                 grace: float = DEFAULT_GRACE, logs_dir: Path | None = None,
                 steps_dir: Path | None = None):
        self.store = store
        self.clock = clock
        self.grace = grace
        self.dirs = [d for d in (logs_dir, steps_dir) if d is not None]

    def tick(self) -> list[Decision]:
        """Decide every due slot of every CronWorkflow, now."""
        now = self.clock()
        with self.store.read() as s:
            rows = crons.list_all(s)
        out: list[Decision] = []
        for row in rows:
            try:
                out += self.tick_cron(row, now)
            except UserError as exc:  # one bad CronWorkflow must not stop the others
                log.error("cron workflow %s: %s", row.name, exc)
        return out

    def tick_cron(self, row: CronWorkflowRow, now: float) -> list[Decision]:
        """Decide the due slots of one CronWorkflow and record how far it got."""
        spec = row.spec.get("spec") or {}
        after = row.checked_through if row.checked_through is not None else row.created_at
        due = slots_between(spec, after, now, origin=row.created_at)
        if not due:
            return []
        out: list[Decision] = []
        if spec.get("suspend") or crons.completed(row):
            why = "suspended" if spec.get("suspend") else "stopped"
            out = [Decision(row.name, s, skipped=why) for s in due]
        else:
            missed = [s for s in due if now - s > self.grace]
            run = set(missed_to_run(missed, crons.catch_up_of(row.spec),
                                    spec.get("startingDeadlineSeconds"), now))
            for slot in due:
                if slot in run or now - slot <= self.grace:
                    out.append(self._fire(row, slot))
                else:
                    out.append(Decision(row.name, slot, skipped="missed"))
        self._record(row, due[-1], out)
        if any(d.created for d in out):
            self._trim(row)
        return out

    def _fire(self, row: CronWorkflowRow, slot: float) -> Decision:
        spec = row.spec["spec"]
        doc = crons.to_workflow(row.spec, slot)
        name = doc["metadata"]["name"]
        policy = spec.get("concurrencyPolicy") or "Allow"
        try:
            why = self._conditions(row, spec, slot)
            if why:
                return Decision(row.name, slot, skipped=why)
            if policy in ("Forbid", "Replace"):
                with self.store.read() as s:
                    active = [r.name for r in crons.runs_of(s, row.name, crons.ACTIVE)
                              if r.name != name]  # a replay of this slot is no competitor
                if active and policy == "Forbid":
                    log.info("%s has concurrencyPolicy Forbid and active runs %s: slot %s "
                             "not run", row.name, active, slot_iso(slot))
                    return Decision(row.name, slot, skipped="Forbid")
                for other in active:
                    try:
                        control.stop(self.store, other, terminate=True)
                    except (ConflictError, NotFoundError):
                        pass  # finished or deleted meanwhile
            wf, created = submit_once(
                self.store, load_resource(doc), idempotency_key=crons.slot_key(row.uid, slot),
                source=f"CronWorkflow/{row.name}")
        except UserError as exc:  # Argo's SubmissionError condition; the next slot tries again
            log.warning("cron workflow %s: slot %s not submitted: %s", row.name,
                        slot_iso(slot), exc)
            return Decision(row.name, slot, skipped=f"error: {exc}")
        return Decision(row.name, slot, workflow=wf.name, created=created)

    def _conditions(self, row: CronWorkflowRow, spec: dict, slot: float) -> str | None:
        """Argo's checks before a slot runs: ``stopStrategy`` (met: the CronWorkflow is
        completed for good) and ``when`` (false: this slot is skipped)."""
        if not spec.get("when") and not spec.get("stopStrategy"):
            return None
        now = self.clock()
        with self.store.read() as s:
            env = crons.expression_env(s, row)
        stop = (spec.get("stopStrategy") or {}).get("expression")
        if stop and crons.stop_reached(env, stop, now):
            log.info("cron workflow %s met its stopStrategy; no more slots run", row.name)
            crons.mark_completed(self.store, row)
            return "stopped"
        if crons.completed(row):
            return "stopped"
        if spec.get("when") and not crons.when_allows(env, spec["when"], now):
            return "when"
        return None

    def _record(self, row: CronWorkflowRow, through: float, done: list[Decision]) -> None:
        """Move ``checked_through`` (and ``last_scheduled_at``) forward, never back: a
        slower concurrent tick cannot undo a faster one's progress."""
        t = CronWorkflowRow
        ran = [d.slot for d in done if d.workflow]
        errors = [d.skipped[len("error: "):] for d in done
                  if d.skipped and d.skipped.startswith("error: ")]
        with self.store.write() as s:
            values: dict = {"checked_through": through}
            if errors or ran:
                values["message"] = errors[-1] if errors else None
            s.execute(update(t).where(t.uid == row.uid, or_(
                t.checked_through.is_(None), t.checked_through < through)).values(**values))
            if ran:
                s.execute(update(t).where(t.uid == row.uid, or_(
                    t.last_scheduled_at.is_(None), t.last_scheduled_at < max(ran)))
                    .values(last_scheduled_at=max(ran)))

    def _trim(self, row: CronWorkflowRow) -> None:
        """Delete the oldest finished runs beyond the history limits set in the spec."""
        spec = row.spec["spec"]
        limits = {True: spec.get("successfulJobsHistoryLimit"),
                  False: spec.get("failedJobsHistoryLimit")}
        if limits[True] is None and limits[False] is None:
            return
        with self.store.write() as s:
            done = crons.runs_of(s, row.name, tuple(P.WF_TERMINAL))
            doomed: list[str] = []
            for ok, keep in limits.items():
                if keep is None or keep < 0:
                    continue
                mine = sorted((r for r in done if (r.phase == P.WF_SUCCEEDED) == ok),
                              key=lambda r: r.finished_at or r.created_at, reverse=True)
                doomed += [r.uid for r in mine[keep:]]
            for uid in doomed:
                q.delete_workflow(s, uid)
        for uid in doomed:
            for d in self.dirs:
                shutil.rmtree(d / uid, ignore_errors=True)
