"""Artifact lineage (issue 8 item 5): which run and node produced an artifact, and which
nodes consumed it.

Producers are the ``artifacts`` rows the controller writes when it saves a node's
outputs. Consumers are recorded at launch: a node whose input artifact comes ``from``
another node's output (Argo ``from``; an SDK ``Input[...]`` wired from an
``Output[...]`` compiles to the same) gets an ``artifact_consumers`` row pointing at the
producer's row (:func:`record_consumers`, idempotent: a retried attempt adds nothing).

Query from Python with :func:`artifact_lineage`; ``chute get`` shows a compact line per
output artifact under its node (:func:`lineage_lines`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select

from chute.errors import NotFoundError
from chute.store.models import ArtifactConsumerRow, ArtifactRow, NodeRow, WorkflowRow

log = logging.getLogger(__name__)


def _sources(inputs: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The producer records of a node's ``from`` input artifacts."""
    out = []
    for art in (inputs or {}).get("artifacts") or []:
        src = art.get("from")
        if not src or not isinstance(src, str):
            continue
        try:
            rec = json.loads(src)
        except ValueError:
            continue  # an unresolved reference: nothing was produced, nothing consumed
        if isinstance(rec, dict) and rec.get("key"):
            out.append(rec)
    return out


def _producer_row(session: Any, rec: Mapping[str, Any]) -> ArtifactRow | None:
    """The artifacts row of a record: by key (unique per stored artifact), newest first."""
    row = session.scalars(select(ArtifactRow).where(ArtifactRow.key == rec["key"])
                          .order_by(ArtifactRow.id.desc()).limit(1)).first()
    if row is None and rec.get("workflow_uid") and rec.get("node_id") and rec.get("name"):
        row = session.scalars(select(ArtifactRow).where(
            ArtifactRow.workflow_uid == rec["workflow_uid"],
            ArtifactRow.node_id == rec["node_id"], ArtifactRow.name == rec["name"])
            .order_by(ArtifactRow.id.desc()).limit(1)).first()
    return row


def add_consumers(session: Any, workflow_uid: str, node_id: str,
                  inputs: Mapping[str, Any] | None) -> int:
    """Record ``node_id`` as a consumer of each artifact its inputs come ``from``; the
    number of rows added (rows already there are not added again)."""
    added = 0
    for rec in _sources(inputs):
        prod = _producer_row(session, rec)
        if prod is None:
            continue  # e.g. produced by a run since deleted: nothing to point at
        exists = session.scalars(select(ArtifactConsumerRow.pk).where(
            ArtifactConsumerRow.artifact_id == prod.id,
            ArtifactConsumerRow.workflow_uid == workflow_uid,
            ArtifactConsumerRow.node_id == node_id).limit(1)).first()
        if exists is None:
            session.add(ArtifactConsumerRow(artifact_id=prod.id, workflow_uid=workflow_uid,
                                            node_id=node_id))
            added += 1
    return added


def record_consumers(store: Any, workflow_uid: str, node: Any) -> int:
    """The controller's hook at launch: record ``node``'s consumed artifacts. Lineage is
    bookkeeping: a failure here is logged and never fails the step."""
    if not _sources(getattr(node, "inputs", None)):
        return 0
    try:
        with store.write() as s:
            return add_consumers(s, workflow_uid, node.id, node.inputs)
    except Exception as exc:  # noqa: BLE001 - lineage must not stop a run
        log.warning("lineage of node %s not recorded: %s", getattr(node, "id", "?"), exc)
        return 0


def _names(session: Any, uids: Iterable[str]) -> dict[str, str]:
    uids = list(set(uids))
    if not uids:
        return {}
    rows = session.execute(select(WorkflowRow.uid, WorkflowRow.name)
                           .where(WorkflowRow.uid.in_(uids)))
    return {u: n for u, n in rows}


def _find(session: Any, ref: int | tuple[str, str, str]) -> ArtifactRow:
    if isinstance(ref, int):
        row = session.get(ArtifactRow, ref)
        if row is None:
            raise NotFoundError(f"artifact {ref} not found")
        return row
    workflow, node, name = ref
    uid = session.scalars(select(WorkflowRow.uid).where(
        (WorkflowRow.name == workflow) | (WorkflowRow.uid == workflow))).first() or workflow
    # the node by id, or by display name / full name within the workflow
    node_ids = [node] + list(session.scalars(select(NodeRow.node_id).where(
        NodeRow.workflow_uid == uid,
        (NodeRow.display_name == node) | (NodeRow.name == node))))
    row = session.scalars(select(ArtifactRow).where(
        ArtifactRow.workflow_uid == uid, ArtifactRow.node_id.in_(node_ids),
        ArtifactRow.name == name).order_by(ArtifactRow.id.desc()).limit(1)).first()
    if row is None:
        raise NotFoundError(f"artifact {name!r} of node {node!r} in workflow {workflow!r} "
                            "not found")
    return row


def artifact_lineage(session: Any, ref: int | tuple[str, str, str]) -> dict[str, Any]:
    """Lineage of one artifact, given its id or ``(workflow, node, name)`` (workflow by
    name or uid; node by id or display name)::

        {"artifact_id": 7, "name": "data", "key": "...", "digest": "sha256:...",
         "producer": ("diamond-x1y2z", "diamond-x1y2z-123"),
         "consumers": [("diamond-x1y2z", "diamond-x1y2z-456"), ...]}

    Workflows are named by name (their uid once deleted). NotFoundError if unknown."""
    row = _find(session, ref)
    cons = list(session.execute(
        select(ArtifactConsumerRow.workflow_uid, ArtifactConsumerRow.node_id)
        .where(ArtifactConsumerRow.artifact_id == row.id).order_by(ArtifactConsumerRow.pk)))
    names = _names(session, [row.workflow_uid, *(u for u, _ in cons)])
    return {
        "artifact_id": row.id, "name": row.name, "key": row.key, "digest": row.digest,
        "size": row.size,
        "producer": (names.get(row.workflow_uid, row.workflow_uid), row.node_id),
        "consumers": [(names.get(u, u), n) for u, n in cons],
    }


def workflow_lineage(session: Any, workflow_uid: str
                     ) -> dict[str, list[tuple[str, list[tuple[str, str, str]]]]]:
    """For each node of a workflow with output artifacts: ``[(artifact name, consumers)]``,
    each consumer ``(workflow name, node id, display name)``. One query per table."""
    arts = list(session.scalars(select(ArtifactRow).where(
        ArtifactRow.workflow_uid == workflow_uid).order_by(ArtifactRow.id)))
    if not arts:
        return {}
    cons = list(session.execute(
        select(ArtifactConsumerRow.artifact_id, ArtifactConsumerRow.workflow_uid,
               ArtifactConsumerRow.node_id)
        .where(ArtifactConsumerRow.artifact_id.in_([a.id for a in arts]))
        .order_by(ArtifactConsumerRow.pk)))
    names = _names(session, [u for _, u, _ in cons])
    display = dict(session.execute(select(NodeRow.node_id, NodeRow.display_name).where(
        NodeRow.node_id.in_({n for _, _, n in cons}))).all()) if cons else {}
    by_art: dict[int, list[tuple[str, str, str]]] = {}
    for aid, uid, nid in cons:
        by_art.setdefault(aid, []).append((names.get(uid, uid), nid, display.get(nid, nid)))
    out: dict[str, list[tuple[str, list[tuple[str, str, str]]]]] = {}
    latest: dict[tuple[str, str], ArtifactRow] = {}
    for a in arts:  # a replayed save may have written a row twice: the newest one counts
        latest[(a.node_id, a.name)] = a
    for (nid, name), a in latest.items():
        consumers = [c for x in arts if x.node_id == nid and x.name == name
                     for c in by_art.get(x.id, [])]
        out.setdefault(nid, []).append((name, consumers))
    return out


def lineage_lines(lineage: Mapping[str, list], node_id: str, workflow_name: str,
                  indent: str) -> list[str]:
    """``chute get``'s compact lines under a node: ``↳ data → summarize, scale``."""
    lines = []
    for name, consumers in lineage.get(node_id, []):
        who = [d if wf == workflow_name else f"{wf}/{d}" for wf, _nid, d in consumers]
        lines.append(f"{indent}↳ {name} → {', '.join(dict.fromkeys(who)) or '(no consumers)'}")
    return lines
