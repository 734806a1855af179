"""Metrics of SDK steps into the metadata store (issue 5 item 5).

A compiled SDK step names the KFP type of each output artifact in its template's pod
annotation ``chute.dev/artifact-types``. When such a step succeeds, the controller calls
:func:`metric_rows` with the artifacts it just saved: each ``system.Metrics`` /
``system.ClassificationMetrics`` file is parsed by
:func:`chute.artifacts.metrics_format.parse_metrics` into ``metrics`` rows against the
workflow and node — scalars as ``name``/``value``, a confusion matrix or ROC curve as
``kind`` plus JSON ``data`` (with the artifact's name). A file that is not in the format
is logged and skipped: the step's own result stands, the artifact stays downloadable.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import delete

from chute.artifacts.metrics_format import metrics_artifacts, parse_metrics
from chute.store.models import MetricRow

log = logging.getLogger(__name__)

MAX_METRICS_BYTES = 1 << 20


def find_template(plan: Any, name: str | None) -> dict[str, Any]:
    """The template called ``name`` in a run's plan: the workflow's own first."""
    if not name or plan is None:
        return {}
    own = plan.templates.get(plan.root_scope, {})
    if name in own:
        return own[name]
    for scope_templates in plan.templates.values():
        if name in scope_templates:
            return scope_templates[name]
    return {}


def _read(record: Any, host_path: str | None, repository: Any) -> bytes | None:
    """The metrics file's bytes: the file the step wrote, else the stored object."""
    if host_path and Path(host_path).is_file():
        with open(host_path, "rb") as f:
            return f.read(MAX_METRICS_BYTES + 1)
    if getattr(record, "archive", "none") == "none" and not getattr(record, "is_dir", False):
        with repository.open(record.key) as f:
            return f.read(MAX_METRICS_BYTES + 1)
    return None


def metric_rows(template: Mapping[str, Any], records: Mapping[str, Any],
                outputs: Mapping[str, str], repository: Any, *, workflow_uid: str,
                node_id: str) -> list[MetricRow]:
    """Metric rows for the metrics artifacts among ``records`` (name -> ArtifactRecord)
    of one node; ``outputs`` maps step paths to the host files the step wrote."""
    kinds = metrics_artifacts(dict(template or {}))
    rows: list[MetricRow] = []
    for art_name, title in kinds.items():
        rec = records.get(art_name)
        if rec is None:
            continue
        try:
            content = _read(rec, outputs.get(rec.path or ""), repository)
            if content is None or len(content) > MAX_METRICS_BYTES:
                raise ValueError("missing, archived, or larger than 1 MiB")
            parsed = parse_metrics(title, content)
        except (OSError, ValueError) as exc:
            log.warning("node %s: metrics artifact %r not stored: %s", node_id, art_name, exc)
            continue
        for m in parsed:
            data = dict(m.data or {})
            data["artifact"] = art_name
            rows.append(MetricRow(workflow_uid=workflow_uid, node_id=node_id, name=m.name,
                                  value=m.value, kind=m.kind, data=data))
    return rows


def replace_node_metrics(session: Any, workflow_uid: str, node_id: str,
                         rows: list[MetricRow]) -> None:
    """Store ``rows`` as the node's metrics (a replayed result does not add twice)."""
    session.execute(delete(MetricRow).where(MetricRow.workflow_uid == workflow_uid,
                                            MetricRow.node_id == node_id))
    session.add_all(rows)


def record_metrics(session: Any, plan: Any, node: Any, records: Mapping[str, Any],
                   outputs: Mapping[str, str], repository: Any, workflow_uid: str) -> int:
    """The controller's hook: store the metrics of ``node``'s saved ``records``; how many
    rows. Never raises for bad metrics data (logged instead)."""
    template = find_template(plan, getattr(node, "template_name", None))
    if not metrics_artifacts(template):
        return 0
    rows = metric_rows(template, records, outputs, repository,
                       workflow_uid=workflow_uid, node_id=node.id)
    replace_node_metrics(session, workflow_uid, node.id, rows)
    return len(rows)


def node_metrics(session: Any, workflow_uid: str, node_id: str | None = None) -> list[MetricRow]:
    """The stored metrics of a workflow (or one of its nodes), in insertion order."""
    from sqlalchemy import select

    stmt = select(MetricRow).where(MetricRow.workflow_uid == workflow_uid)
    if node_id is not None:
        stmt = stmt.where(MetricRow.node_id == node_id)
    return list(session.scalars(stmt.order_by(MetricRow.pk)))
