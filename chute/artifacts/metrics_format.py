"""The metrics artifact format: reading what a step's metrics artifacts hold.

A compiled step declares, in its template's pod annotation ``chute.dev/artifact-types``,
the KFP schema title of each output artifact (``{"metrics": "system.Metrics"}``). The
artifacts titled ``system.Metrics`` and ``system.ClassificationMetrics`` are JSON files in
the format documented in :mod:`chute.dsl.runtime`; :func:`parse_metrics` turns one into
rows shaped like the metadata store's ``metrics`` table (name, value, kind, data).

Standard library only, and no import of the rest of chute, so the engine, the server and
the CLI can all use it. It lives beside the artifacts (not in ``chute.dsl``, which
re-exports it) because the engine stores these rows and must not import the SDK.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

ANNOTATION = "chute.dev/artifact-types"
METRICS = "system.Metrics"
CLASSIFICATION = "system.ClassificationMetrics"


@dataclass(frozen=True)
class MetricRecord:
    """One metric: a scalar (``value``) or structured data (``data``) of some ``kind``."""

    name: str
    value: float | None
    kind: str = "scalar"  # scalar, confusion_matrix, roc_curve
    data: dict[str, Any] | None = None


def metrics_artifacts(template: dict[str, Any]) -> dict[str, str]:
    """Output artifact name -> schema title, for the metrics artifacts of a template."""
    annotations = ((template.get("metadata") or {}).get("annotations") or {})
    try:
        types = json.loads(annotations.get(ANNOTATION, "{}"))
    except ValueError:
        return {}
    if not isinstance(types, dict):
        return {}
    return {k: v for k, v in types.items() if v in (METRICS, CLASSIFICATION)}


def parse_metrics(schema_title: str, content: bytes | str) -> list[MetricRecord]:
    """The metrics in one metrics file; ValueError if it is not the documented format."""
    try:
        doc = json.loads(content)
    except ValueError as exc:
        raise ValueError(f"metrics file is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError("metrics file must hold a JSON object")  # noqa: TRY004 - bad data
    if schema_title == METRICS:
        out = []
        for name, value in doc.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"metric {name!r} is not a number: {value!r:.40}")  # noqa: TRY004
            if not math.isfinite(value):
                raise ValueError(f"metric {name!r} is not finite: {value}")
            out.append(MetricRecord(str(name), float(value)))
        return out
    if schema_title == CLASSIFICATION:
        out = []
        if "confusionMatrix" in doc:
            cm = doc["confusionMatrix"]
            labels = [a.get("displayName") for a in cm.get("annotationSpecs", [])]
            rows = [r.get("row") for r in cm.get("rows", [])]
            if len(rows) != len(labels) or any(
                    not isinstance(r, list) or len(r) != len(labels) for r in rows):
                raise ValueError("confusionMatrix must be square over its annotationSpecs")
            out.append(MetricRecord("confusion_matrix", None, "confusion_matrix",
                                    {"categories": labels, "matrix": rows}))
        if "confidenceMetrics" in doc:
            points = doc["confidenceMetrics"]
            if not isinstance(points, list):
                raise ValueError("confidenceMetrics must be a list")
            out.append(MetricRecord("roc_curve", None, "roc_curve", {"points": points}))
        return out
    raise ValueError(f"not a metrics artifact type: {schema_title!r}")
