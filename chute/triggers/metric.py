"""Metric-threshold triggers: a run reports a metric that meets a condition (drift above a
bound, accuracy below one), and a workflow is submitted, once per reported value::

    apiVersion: chute.dev/v1alpha1
    kind: MetricTrigger
    metadata: {name: retrain-on-drift}
    spec:
      metric: drift                  # the metric's name, as runs report it
      condition: value > 0.3         # an expr-lang expression (as Argo's), no Python eval
      labels: {team: ml}             # only runs with these labels (optional)
      pollSeconds: 5                 # how often to look (default 10, at least 1)
      workflowTemplateRef: {name: retrain}
      parameters:
      - {name: drift, src: {dataKey: body.value}}
      - {name: source-run, src: {dataKey: body.workflow}}

The condition sees ``value`` (the number), ``metric``, ``workflow`` (the reporting run's
name) and ``labels`` (its labels). The event is ``{"body": {"metric", "value",
"workflow", "node"}}``. Only values reported after the trigger was created count; each
one that meets the condition is submitted under the key ``metric:<trigger>:<metric row>``,
so it makes one run, also across restarts and concurrent schedulers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from chute.errors import ExpressionError, Issue, SpecError
from chute.spec import expr
from chute.spec.validate_util import expression_problem
from chute.store.models import MetricRow, WorkflowRow
from chute.triggers import target as T

LABEL = "chute.dev/metric-trigger"
BATCH = 1000  # metric rows looked at per poll
# rows committed out of id order (PostgreSQL sequences) are caught by looking back this
# many ids each poll; the idempotency key keeps a second look from running them twice
LOOKBACK = 200


class MetricTriggerSpec(T.TargetSpec):
    """Which metric, the condition, and what to run."""

    metric: str = Field(min_length=1, max_length=253)
    condition: str = Field(min_length=1, max_length=4096)
    labels: dict[str, str] | None = None
    pollSeconds: float = Field(10.0, ge=1, le=86400)


class MetricTrigger(T.Strict):
    """A metric-threshold trigger resource."""

    apiVersion: Literal["chute.dev/v1alpha1"]
    kind: Literal["MetricTrigger"]
    metadata: T.Meta
    spec: MetricTriggerSpec


@dataclass(frozen=True)
class Reading:
    """One reported value that met the condition."""

    pk: int
    metric: str
    value: float
    workflow: str
    node: str | None

    def key(self, trigger: str) -> str:
        """The idempotency key of this reading."""
        return f"metric:{trigger}:{self.pk}"

    def event(self) -> dict[str, Any]:
        """The event its parameters are taken from."""
        return {"body": {"metric": self.metric, "value": self.value,
                         "workflow": self.workflow, "node": self.node}}


def parse(doc: Any, source: str | None = None) -> MetricTrigger:
    """A MetricTrigger from parsed YAML/JSON, or SpecError naming each bad field."""
    res: MetricTrigger = T.parse_model(MetricTrigger, doc, source)
    problem = expression_problem(res.spec.condition)
    if problem:
        raise SpecError(Issue("spec.condition", problem), source)
    return res


def last_id(s: Session) -> int:
    """The newest metric row id (where a new trigger starts)."""
    return int(s.scalar(select(func.max(MetricRow.pk))) or 0)


def readings(s: Session, trigger: MetricTrigger, after: int, start: int = 0
             ) -> tuple[list[Reading], int, str | None]:
    """Values of the metric reported in rows after ``after`` (less LOOKBACK, never at or
    before ``start``, the newest row when the trigger was created) that meet the
    condition, the newest row id looked at, and the first evaluation error (if any)."""
    spec = trigger.spec
    rows = list(s.execute(
        select(MetricRow.pk, MetricRow.value, MetricRow.node_id, WorkflowRow.name,
               WorkflowRow.labels)
        .join(WorkflowRow, WorkflowRow.uid == MetricRow.workflow_uid)
        .where(MetricRow.pk > max(start, after - LOOKBACK), MetricRow.name == spec.metric,
               MetricRow.value.is_not(None))
        .order_by(MetricRow.pk).limit(BATCH)))
    newest = max([after, *(r[0] for r in rows)]) if len(rows) < BATCH else rows[-1][0]
    out, error = [], None
    for pk, value, node, wf, labels in rows:
        labels = labels or {}
        if spec.labels and any(labels.get(k) != v for k, v in spec.labels.items()):
            continue
        env = {"value": value, "metric": spec.metric, "workflow": wf, "labels": labels}
        try:
            met = expr.evaluate(spec.condition, env)
        except ExpressionError as exc:
            error = error or f"spec.condition: {exc}"
            continue
        if met is True:
            out.append(Reading(pk, spec.metric, float(value), wf, node))
    return out, newest, error
