"""A stored workflow in Argo's own shape (``chute get -o json|yaml``): the resource plus
``status`` with ``phase``, ``startedAt``, ``finishedAt``, ``message`` and ``nodes`` keyed by
node id, so tools written for Argo can read it."""

from __future__ import annotations

from typing import Any

from chute.engine.vars import rfc3339
from chute.store.models import NodeRow, WorkflowRow


def node_status(row: NodeRow, wf_name: str) -> dict[str, Any]:
    """One node as Argo's NodeStatus."""
    out: dict[str, Any] = {
        "id": row.node_id, "name": row.name, "displayName": row.display_name,
        "type": row.type, "templateName": row.template_name, "phase": row.phase,
        "boundaryID": row.boundary_id, "children": list(row.children or []) or None,
        "startedAt": rfc3339(row.started_at), "finishedAt": rfc3339(row.finished_at),
        "message": row.message, "inputs": row.inputs or None,
    }
    outputs = dict(row.outputs or {})
    if row.exit_code is not None:
        outputs.setdefault("exitCode", str(row.exit_code))
    out["outputs"] = outputs or None
    if row.cached:
        out["memoizationStatus"] = {"hit": True,
                                    "key": (row.message or "").removeprefix("cache hit: ")}
    if row.type == "Pod":
        out["podName"] = row.node_id
        out["hostNodeName"] = "localhost"
    if row.started_at and row.finished_at:
        out["estimatedDuration"] = int(row.finished_at - row.started_at)
    return {k: v for k, v in out.items() if v is not None}


def workflow_status(row: WorkflowRow, nodes: list[NodeRow]) -> dict[str, Any]:
    """The workflow resource with Argo's ``status``."""
    doc = dict(row.spec)
    meta = dict(doc.get("metadata") or {})
    meta["name"], meta["uid"], meta["namespace"] = row.name, row.uid, row.namespace
    meta["creationTimestamp"] = rfc3339(row.created_at)
    labels = dict(meta.get("labels") or {})
    labels["workflows.argoproj.io/phase"] = row.phase
    if row.phase in ("Succeeded", "Failed", "Error"):
        labels["workflows.argoproj.io/completed"] = "true"
    meta["labels"] = labels
    doc["metadata"] = meta
    status: dict[str, Any] = {
        "phase": row.phase,
        "startedAt": rfc3339(row.started_at),
        "finishedAt": rfc3339(row.finished_at),
        "message": row.message,
        "nodes": {n.node_id: node_status(n, row.name) for n in nodes},
    }
    if row.outputs:
        status["outputs"] = row.outputs
    if row.arguments:
        status["storedParameters"] = dict(row.arguments)
    doc["status"] = {k: v for k, v in status.items() if v is not None}
    return doc
