"""Metrics of a run, for the experiment table and the compare page.

Two sources: rows of the ``metrics`` table (reported by steps or the engine) and the
metrics artifacts of SDK components — outputs whose template annotation
``chute.dev/artifact-types`` says ``system.Metrics`` (a flat ``{name: number}`` JSON) or
``system.ClassificationMetrics`` (KFP's ``confusionMatrix`` / ``confidenceMetrics``).
Results of finished runs are cached per app: they cannot change any more.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from chute.server.artifact_access import find_record, node_artifacts, repository
from chute.server.runs_view import TERMINAL

MAX_METRICS_BYTES = 1 << 20


def _artifact_types(spec: dict[str, Any]) -> dict[str, dict[str, str]]:
    out = {}
    for t in ((spec or {}).get("spec") or {}).get("templates") or []:
        raw = ((t.get("metadata") or {}).get("annotations") or {}).get("chute.dev/artifact-types")
        if raw:
            try:
                out[t.get("name")] = dict(json.loads(raw))
            except (ValueError, TypeError):
                continue
    return out


def _read_json(ctx, record) -> Any:
    with repository(ctx).open(record.key) as fh:
        data = fh.read(MAX_METRICS_BYTES + 1)
    if len(data) > MAX_METRICS_BYTES:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


def _classification(doc: dict[str, Any], name: str, node: str, out: dict[str, Any]) -> None:
    cm = doc.get("confusionMatrix") or {}
    if cm.get("rows"):
        labels = [s.get("displayName", str(i)) for i, s in enumerate(cm.get("annotationSpecs") or [])]
        matrix = [list(r.get("row") or []) for r in cm["rows"]]
        out["confusion"].append({"name": name, "node": node, "labels": labels, "matrix": matrix})
    points = doc.get("confidenceMetrics") or []
    if points:
        pts = sorted(({"x": float(p.get("falsePositiveRate", 0)), "y": float(p.get("recall", 0))}
                      for p in points), key=lambda p: (p["x"], p["y"]))
        out["roc"].append({"name": name, "node": node, "points": pts})


def _structured(kind: str, data: dict[str, Any], name: str, node: str,
                out: dict[str, Any]) -> None:
    """A structured metric row: KFP's shape, or plain ``labels``/``matrix``, ``fpr``/``tpr``."""
    if "confusionMatrix" in data or "confidenceMetrics" in data:
        _classification(data, name, node, out)
    elif "matrix" in data:
        labels = [str(x) for x in data.get("labels") or data.get("categories")
                  or range(len(data["matrix"]))]
        out["confusion"].append({"name": name, "node": node, "labels": labels,
                                 "matrix": [list(r) for r in data["matrix"]]})
    elif "fpr" in data and "tpr" in data:
        pts = [{"x": float(x), "y": float(y)} for x, y in zip(data["fpr"], data["tpr"])]
        out["roc"].append({"name": name, "node": node, "points": pts})
    elif isinstance(data.get("points"), list):  # the engine's roc_curve rows: KFP's points
        _classification({"confidenceMetrics": data["points"]}, name, node, out)


def _compute(ctx, session, row) -> dict[str, Any]:
    from chute.store.models import MetricRow, NodeRow

    out: dict[str, Any] = {"scalars": {}, "series": [], "roc": [], "confusion": []}
    series: dict[str, list[dict[str, float]]] = {}
    stored: set[str] = set()  # nodes whose metrics the engine put in the table
    for m in session.scalars(select(MetricRow).where(MetricRow.workflow_uid == row.uid)
                             .order_by(MetricRow.pk)):
        data = m.data or {}
        stored.add(m.node_id or "")
        if m.kind in ("roc", "roc_curve", "confusion_matrix", "confusionMatrix",
                      "classification"):
            _structured(m.kind, data, data.get("artifact") or m.name, m.node_id or "", out)
        elif m.value is not None:
            if m.name in out["scalars"] or "step" in data:
                series.setdefault(m.name, []).append(
                    {"x": float(data.get("step", len(series.get(m.name, [])))), "y": m.value})
            out["scalars"][m.name] = m.value
    types = _artifact_types(row.spec)
    for node in session.scalars(select(NodeRow).where(NodeRow.workflow_uid == row.uid,
                                                      NodeRow.phase == "Succeeded")):
        if node.node_id in stored:  # already read from the table (runs before it: artifacts)
            continue
        kinds = types.get(node.template_name or "", {})
        for entry in node_artifacts(node.outputs):
            kind = kinds.get(entry.get("name", ""))
            if kind not in ("system.Metrics", "system.ClassificationMetrics"):
                continue
            try:
                doc = _read_json(ctx, find_record(session, row, node.node_id, entry["name"]))
            except Exception:  # noqa: BLE001 - a missing metrics file is not a page error
                continue
            if not isinstance(doc, dict):
                continue
            if kind == "system.Metrics":
                for k, v in doc.items():
                    if isinstance(v, (int, float)) and not isinstance(v, bool):
                        out["scalars"][k] = float(v)
            else:
                _classification(doc, entry["name"], node.display_name, out)
    out["series"] = [{"name": k, "points": v} for k, v in series.items() if len(v) > 1]
    return out


def run_metrics(ctx, session, row) -> dict[str, Any]:
    """All metrics of a run (cached once the run has finished)."""
    cache = ctx.extras.setdefault("metrics_cache", {})
    if row.uid in cache:
        return cache[row.uid]
    result = _compute(ctx, session, row)
    if row.phase in TERMINAL:
        cache[row.uid] = result
    return result


def scalar_metrics(ctx, session, row) -> dict[str, float]:
    """Only the scalar metrics of a run (the experiment table's columns)."""
    return run_metrics(ctx, session, row)["scalars"]
