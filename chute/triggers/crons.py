"""Stored CronWorkflows: create, list, get, delete, suspend and resume (``argo cron ...``),
and the Workflow a slot of one becomes.

A CronWorkflow is validated as Argo's controller would (schedule, timezone,
concurrencyPolicy, the workflowSpec against the stored templates) before anything is
written. chute adds one annotation Argo's schema lets through: ``chute.dev/catch-up: "N"``
(see :mod:`chute.triggers.cron`).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from chute.engine import phases as P
from chute.engine.controller import store_lookup
from chute.engine.plan import build_plan
from chute.engine.submit import stored_templates
from chute.errors import ConflictError, NotFoundError, SpecError
from chute.spec.loader import load_resource, to_dict
from chute.spec.models import CronWorkflow
from chute.spec.validate import validate
from chute.store.db import Store
from chute.store.models import WorkflowRow
from chute.store.models_triggers import CronWorkflowRow
from chute.triggers.schedule import slot_iso

CRON_LABEL = "workflows.argoproj.io/cron-workflow"  # Argo's LabelKeyCronWorkflow
SCHEDULED_TIME = "workflows.argoproj.io/scheduled-time"  # AnnotationKeyCronWfScheduledTime
CATCH_UP = "chute.dev/catch-up"
COMPLETED = "workflows.argoproj.io/cron-completed"  # Argo's LabelKeyCronWorkflowCompleted
ACTIVE = (P.WF_PENDING, P.WF_RUNNING)


def catch_up_of(doc: dict[str, Any]) -> int | None:
    """The ``chute.dev/catch-up`` count of a CronWorkflow resource, or None (Argo's rule)."""
    raw = ((doc.get("metadata") or {}).get("annotations") or {}).get(CATCH_UP)
    if raw is None:
        return None
    text = str(raw).strip()
    if not text.isdigit() or int(text) > 1000:
        raise SpecError(f"metadata.annotations.{CATCH_UP}: expected a whole number of "
                        f"missed slots to run, 0 to 1000, got {raw!r}")
    return int(text)


def check(store: Store, cron: CronWorkflow, source: str | None = None) -> dict[str, Any]:
    """Validate ``cron`` for the local scheduler; its resource as stored, or SpecError."""
    if not isinstance(cron, CronWorkflow):
        raise SpecError(f"expected a CronWorkflow, not a {cron.kind}", source)
    if not cron.metadata.name:
        raise SpecError("metadata.name: a CronWorkflow needs a name", source)
    issues = validate(cron, "local", templates=stored_templates(store))
    if issues:
        raise SpecError(issues, source)
    doc = to_dict(cron)
    catch_up_of(doc)
    # what a slot would submit must resolve now (workflowTemplateRef, parameters), as
    # Argo's ValidateCronWorkflow resolves templates at creation
    sample = to_workflow({**doc, "metadata": {**doc["metadata"]}}, 0.0)
    build_plan(sample, uid="cron-check", created_at=0.0, overrides={},
               lookup=store_lookup(store))
    return doc


def create(store: Store, cron: CronWorkflow, *, now: float | None = None,
           source: str | None = None) -> CronWorkflowRow:
    """Store a new CronWorkflow; ConflictError if one of that name exists. Its first slot
    is the first one after ``now``: slots before its creation are not missed ones."""
    doc = check(store, cron, source)
    now = time.time() if now is None else now
    meta = doc.setdefault("metadata", {})
    meta.setdefault("namespace", "default")
    meta["uid"] = str(uuid.uuid4())
    meta.setdefault("creationTimestamp", slot_iso(now))
    row = CronWorkflowRow(uid=meta["uid"], name=meta["name"], namespace=meta["namespace"],
                          spec=doc, created_at=now)
    try:
        with store.write() as s:
            if s.scalar(select(CronWorkflowRow.uid).where(
                    CronWorkflowRow.name == row.name)) is not None:
                raise ConflictError(f"cron workflow {row.name!r} already exists")
            s.add(row)
    except IntegrityError:
        raise ConflictError(f"cron workflow {row.name!r} already exists") from None
    return row


def update(store: Store, cron: CronWorkflow, *, now: float | None = None,
           source: str | None = None) -> CronWorkflowRow:
    """``argo cron update``: replace a stored CronWorkflow's resource, keeping its uid,
    creation and scheduling progress. A changed schedule or timezone starts afresh from
    now: slots of the new schedule before the update are not missed ones (Argo's
    ``IsUsingNewSchedule``)."""
    doc = check(store, cron, source)
    now = time.time() if now is None else now
    with store.write() as s:
        row = get(s, doc["metadata"]["name"])
        old = row.spec.get("spec") or {}
        meta = doc["metadata"]
        meta.setdefault("namespace", row.namespace)
        meta["uid"] = row.uid
        meta["creationTimestamp"] = (row.spec.get("metadata") or {}).get(
            "creationTimestamp", slot_iso(row.created_at))
        values: dict[str, Any] = {"spec": doc}
        if any(old.get(k) != doc["spec"].get(k) for k in ("schedule", "schedules", "timezone")):
            values["checked_through"] = max(now, row.checked_through or 0.0)
        s.execute(sa.update(CronWorkflowRow).where(CronWorkflowRow.uid == row.uid)
                  .values(**values))
    with store.read() as s:
        return get(s, doc["metadata"]["name"])


def get(s: Session, name: str) -> CronWorkflowRow:
    """The CronWorkflow named ``name``, or NotFoundError."""
    row = s.scalar(select(CronWorkflowRow).where(CronWorkflowRow.name == name))
    if row is None:
        raise NotFoundError(f"cron workflow {name!r} not found")
    return row


def list_all(s: Session) -> list[CronWorkflowRow]:
    """Every CronWorkflow, by name."""
    return list(s.scalars(select(CronWorkflowRow).order_by(CronWorkflowRow.name)))


def delete(store: Store, name: str) -> None:
    """Delete a CronWorkflow (the runs it created stay, as in Argo without owner GC)."""
    with store.write() as s:
        s.delete(get(s, name))


def set_suspended(store: Store, name: str, suspended: bool) -> CronWorkflowRow:
    """``argo cron suspend|resume``: set ``spec.suspend``. Slots that fall while
    suspended are skipped, never run later."""
    with store.write() as s:
        row = get(s, name)
        doc = dict(row.spec)
        doc["spec"] = {**doc.get("spec", {}), "suspend": suspended}
        s.execute(sa.update(CronWorkflowRow).where(CronWorkflowRow.uid == row.uid)
                  .values(spec=doc))
        row.spec = doc
    return row


def runs_of(s: Session, name: str, phases: tuple[str, ...] | None = None) -> list[WorkflowRow]:
    """The workflows a CronWorkflow created (by Argo's label), newest first."""
    prefix = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "-%"
    q = select(WorkflowRow).where(WorkflowRow.name.like(prefix, escape="\\"))
    if phases:
        q = q.where(WorkflowRow.phase.in_(phases))
    rows = s.scalars(q.order_by(WorkflowRow.created_at.desc()))
    return [r for r in rows if (r.labels or {}).get(CRON_LABEL) == name]


def slot_key(uid: str, slot: float) -> str:
    """The idempotency key of one slot of one CronWorkflow: a slot makes one run at most."""
    return f"cron:{uid}:{slot_iso(slot)}"


def to_workflow(doc: dict[str, Any], slot: float) -> dict[str, Any]:
    """The Workflow a slot of CronWorkflow ``doc`` submits, shaped as Argo's
    ``ConvertCronWorkflowToWorkflowWithProperties``: named ``<cron>-<unix slot>``, labelled
    with the cron's name, annotated with the slot, plus ``spec.workflowMetadata``."""
    meta, spec = doc["metadata"], doc["spec"]
    extra = spec.get("workflowMetadata") or {}
    labels = {CRON_LABEL: meta["name"], **(extra.get("labels") or {})}
    annotations = {SCHEDULED_TIME: slot_iso(slot), **(extra.get("annotations") or {})}
    return {"apiVersion": doc.get("apiVersion", "argoproj.io/v1alpha1"), "kind": "Workflow",
            "metadata": {"name": f"{meta['name']}-{int(slot)}",
                         "namespace": meta.get("namespace") or "default",
                         "labels": labels, "annotations": annotations},
            "spec": spec["workflowSpec"]}


def view(s: Session, row: CronWorkflowRow, *, now: float | None = None) -> dict[str, Any]:
    """The CronWorkflow with an Argo-shaped ``status`` (active runs, lastScheduledTime,
    succeeded/failed counts) and chute's ``nextScheduledTime``."""
    from chute.triggers.schedule import next_slot

    runs = runs_of(s, row.name)
    now = time.time() if now is None else now
    spec = row.spec.get("spec", {})
    status: dict[str, Any] = {
        "active": [{"kind": "Workflow", "name": r.name, "namespace": r.namespace,
                    "uid": r.uid} for r in runs if r.phase in ACTIVE],
        "succeeded": sum(r.phase == P.WF_SUCCEEDED for r in runs),
        "failed": sum(r.phase in (P.WF_FAILED, P.WF_ERROR) for r in runs),
        "phase": "Stopped" if completed(row) else "Active",
    }
    if row.last_scheduled_at is not None:
        status["lastScheduledTime"] = slot_iso(row.last_scheduled_at)
    nxt = next_slot(spec, max(now, row.checked_through or row.created_at),
                    origin=row.created_at)
    if nxt is not None and not spec.get("suspend"):
        status["nextScheduledTime"] = slot_iso(nxt)
    if row.message:
        status["conditions"] = [{"type": "SubmissionError", "status": "True",
                                 "message": row.message}]
    return {**row.spec, "status": status}


def loaded(row: CronWorkflowRow) -> CronWorkflow:
    """The stored resource as the spec model."""
    res = load_resource(row.spec)
    assert isinstance(res, CronWorkflow)
    return res


def completed(row: CronWorkflowRow) -> bool:
    """Whether ``spec.stopStrategy`` was met: Argo labels it and schedules no more."""
    return ((row.spec.get("metadata") or {}).get("labels") or {}).get(COMPLETED) == "true"


def expression_env(s: Session, row: CronWorkflowRow) -> dict[str, Any]:
    """Argo's ``cronworkflow.*`` variables (``expressionEnv``): name, namespace, labels,
    annotations, succeeded and failed runs (those still stored), lastScheduledTime."""
    import datetime as dt
    import json

    from chute.spec.expr_values import GoTime

    meta = row.spec.get("metadata") or {}
    runs = runs_of(s, row.name, tuple(P.WF_TERMINAL))
    last = (GoTime(dt.datetime.fromtimestamp(row.last_scheduled_at, tz=dt.UTC))
            if row.last_scheduled_at is not None else None)
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    return {"name": row.name, "namespace": row.namespace, "labels": labels,
            "annotations": annotations, "labels.json": json.dumps(labels),
            "annotations.json": json.dumps(annotations),
            "succeeded": sum(r.phase == P.WF_SUCCEEDED for r in runs),
            "failed": sum(r.phase in (P.WF_FAILED, P.WF_ERROR) for r in runs),
            "lastScheduledTime": last}


def when_allows(env: dict[str, Any], when: str, now: float) -> bool:
    """``spec.when``: its ``{{cronworkflow.*}}`` tags substituted, then evaluated as a
    govaluate condition, as Argo's ``evalWhen`` does; ExpressionError if it cannot be."""
    import datetime as dt

    from chute.spec.expr import evaluate_when, use_clock
    from chute.spec.templating import substitute

    flat = {f"cronworkflow.{k}": v for k, v in env.items()}
    with use_clock(lambda: dt.datetime.fromtimestamp(now, tz=dt.UTC)):
        return evaluate_when(substitute(when, flat))


def stop_reached(env: dict[str, Any], expression: str, now: float) -> bool:
    """``spec.stopStrategy.expression`` (expr-lang over ``cronworkflow.*``) is true."""
    import datetime as dt

    from chute.spec.expr import evaluate, use_clock

    with use_clock(lambda: dt.datetime.fromtimestamp(now, tz=dt.UTC)):
        return evaluate(expression, {"cronworkflow": env}) is True


def mark_completed(store: Store, row: CronWorkflowRow) -> None:
    """Label the CronWorkflow completed (Argo's Stopped phase): no slot runs any more."""
    with store.write() as s:
        cur = get(s, row.name)
        doc = json_copy(cur.spec)
        meta = doc.setdefault("metadata", {})
        meta["labels"] = {**(meta.get("labels") or {}), COMPLETED: "true"}
        s.execute(sa.update(CronWorkflowRow).where(CronWorkflowRow.uid == cur.uid)
                  .values(spec=doc))
    row.spec = doc


def json_copy(value: Any) -> Any:
    """A deep copy of JSON data."""
    import json

    return json.loads(json.dumps(value))
