"""Reading what a step's metrics artifacts hold (the format lives in
:mod:`chute.artifacts.metrics_format`, where the engine can use it; re-exported here)."""

from chute.artifacts.metrics_format import (
    ANNOTATION,
    CLASSIFICATION,
    METRICS,
    MetricRecord,
    metrics_artifacts,
    parse_metrics,
)

__all__ = ["ANNOTATION", "CLASSIFICATION", "METRICS", "MetricRecord", "metrics_artifacts",
           "parse_metrics"]
