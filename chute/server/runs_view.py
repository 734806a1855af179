"""Read side of runs: list with filters and paging, summaries, Argo-shaped documents.

Runs are the store's workflow rows; a run of a pipeline carries the labels
:data:`PIPELINE_LABEL` / :data:`VERSION_LABEL`, and ``experiment_id`` says which
experiment it belongs to.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from chute.store.models import NodeRow, WorkflowRow

PIPELINE_LABEL = "chute.dev/pipeline-id"
VERSION_LABEL = "chute.dev/pipeline-version"
STEP_TYPES = ("Pod", "Container", "Script")
TERMINAL = ("Succeeded", "Failed", "Error")


def parameters_of_run(row: WorkflowRow) -> dict[str, Any]:
    """Effective parameters of a run: spec defaults overlaid with submitted values."""
    spec = (row.spec or {}).get("spec") or {}
    params = {p.get("name"): p.get("value") for p in
              ((spec.get("arguments") or {}).get("parameters") or []) if p.get("name")}
    params.update(row.arguments or {})
    return params


def progress_of(session: Session, uids: list[str]) -> dict[str, str]:
    """Argo's ``progress`` (``done/total`` over step nodes) for each workflow uid."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    if uids:
        q = (select(NodeRow.workflow_uid, NodeRow.phase, func.count())
             .where(NodeRow.workflow_uid.in_(uids), NodeRow.type.in_(STEP_TYPES))
             .group_by(NodeRow.workflow_uid, NodeRow.phase))
        for uid, phase, n in session.execute(q):
            counts[uid][1] += n
            if phase in ("Succeeded", "Failed", "Error", "Skipped", "Omitted"):
                counts[uid][0] += n
    return {u: f"{counts[u][0]}/{counts[u][1]}" for u in uids}


def summary(row: WorkflowRow, progress: str) -> dict[str, Any]:
    """A run as the runs list shows it."""
    end = row.finished_at or (time.time() if row.started_at else None)
    return {
        "name": row.name, "uid": row.uid, "phase": row.phase, "message": row.message,
        "createdAt": row.created_at, "startedAt": row.started_at,
        "finishedAt": row.finished_at,
        "duration": (end - row.started_at) if row.started_at and end else None,
        "progress": progress, "experimentId": row.experiment_id,
        "pipelineId": (row.labels or {}).get(PIPELINE_LABEL),
        "parameters": parameters_of_run(row), "suspended": bool(row.suspended),
    }


def list_runs(session: Session, *, phases: list[str] | None = None,
              experiment_id: str | None = None, pipeline_id: str | None = None,
              name_contains: str | None = None, limit: int = 50,
              offset: int = 0) -> tuple[list[WorkflowRow], int]:
    """Filtered workflow rows (newest first) and the total count before paging. Paging
    and counting happen in SQL (``ix_workflows_created_at``): a page of a 100k-run
    history loads one page of rows, not the history."""
    conds = []
    if phases:
        conds.append(WorkflowRow.phase.in_(phases))
    if experiment_id:
        conds.append(WorkflowRow.experiment_id == experiment_id)
    if name_contains:
        conds.append(WorkflowRow.name.contains(name_contains, autoescape=True))
    order = (WorkflowRow.created_at.desc(), WorkflowRow.name)
    if pipeline_id:
        # labels are JSON: filter in Python (portable across SQLite/PostgreSQL), over the
        # labels column only, then load the page's rows
        uids = [uid for uid, labels in session.execute(
                    select(WorkflowRow.uid, WorkflowRow.labels).where(*conds).order_by(*order))
                if (labels or {}).get(PIPELINE_LABEL) == pipeline_id]
        page = uids[offset:offset + limit]
        rows = list(session.scalars(select(WorkflowRow).where(WorkflowRow.uid.in_(page))
                                    .order_by(*order))) if page else []
        return rows, len(uids)
    total = session.scalar(select(func.count()).select_from(WorkflowRow).where(*conds)) or 0
    rows = list(session.scalars(select(WorkflowRow).where(*conds).order_by(*order)
                                .limit(limit).offset(offset)))
    return rows, total


def json_response(obj: Any, status_code: int = 200):
    """A JSON response serialised directly (FastAPI's encoder costs ~10x more on a
    1,000-node run document, which is plain JSON data already)."""
    import json

    from fastapi.responses import Response

    body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str)
    return Response(body.encode(), status_code=status_code, media_type="application/json")


def argo_document(session: Session, row: WorkflowRow) -> dict[str, Any]:
    """The run in Argo's Workflow shape, with ``status.nodes`` and ``status.progress``."""
    from chute.engine.status import workflow_status
    from chute.store import queries

    doc = workflow_status(row, queries.nodes_of(session, row.uid))
    doc.setdefault("status", {})["progress"] = progress_of(session, [row.uid])[row.uid]
    if row.experiment_id:
        doc["metadata"].setdefault("labels", {})["chute.dev/experiment-id"] = row.experiment_id
    return doc
