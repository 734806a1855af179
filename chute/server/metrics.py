"""Prometheus metrics at ``/metrics``, read from the store at scrape time.

Numbers come from the database, not from counters in this process, so they are right
whichever process (server, CLI, standalone controller) ran the workflows, and they
survive a restart. Each app has its own registry (no global state).

- ``chute_workflows{phase}``: workflows by phase;
- ``chute_nodes{phase}``: pod/step nodes by phase;
- ``chute_step_duration_seconds``: histogram of finished step durations (the most recent
  :data:`DURATION_WINDOW` steps);
- ``chute_queue_depth``: steps waiting to start in running workflows.
"""

from __future__ import annotations

import bisect

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from sqlalchemy import func, select

router = APIRouter(tags=["metrics"])
PHASES = ("Pending", "Running", "Succeeded", "Failed", "Error", "Skipped", "Omitted")
BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
DURATION_WINDOW = 10_000
STEP_TYPES = ("Pod", "Container", "Script")


class StoreCollector:
    """A prometheus collector that queries the store on each scrape."""

    def __init__(self, store):
        self.store = store

    def collect(self):
        from chute.store.models import NodeRow, WorkflowRow

        with self.store.read() as s:
            wf = dict(s.execute(select(WorkflowRow.phase, func.count())
                                .group_by(WorkflowRow.phase)).all())
            nodes = dict(s.execute(select(NodeRow.phase, func.count())
                                   .where(NodeRow.type.in_(STEP_TYPES))
                                   .group_by(NodeRow.phase)).all())
            durations = [
                f - st for st, f in s.execute(
                    select(NodeRow.started_at, NodeRow.finished_at)
                    .where(NodeRow.type.in_(STEP_TYPES), NodeRow.finished_at.is_not(None),
                           NodeRow.started_at.is_not(None))
                    .order_by(NodeRow.finished_at.desc()).limit(DURATION_WINDOW)
                ).all()
            ]
            queued = s.scalar(
                select(func.count()).select_from(NodeRow).join(
                    WorkflowRow, WorkflowRow.uid == NodeRow.workflow_uid)
                .where(WorkflowRow.phase == "Running", NodeRow.phase == "Pending",
                       NodeRow.type.in_(STEP_TYPES))
            ) or 0
        g = GaugeMetricFamily("chute_workflows", "Workflows by phase", labels=["phase"])
        for phase in sorted(set(PHASES[:5]) | set(wf)):
            g.add_metric([phase], wf.get(phase, 0))
        yield g
        n = GaugeMetricFamily("chute_nodes", "Step nodes by phase", labels=["phase"])
        for phase in sorted(set(PHASES) | set(nodes)):
            n.add_metric([phase], nodes.get(phase, 0))
        yield n
        counts = [0] * (len(BUCKETS) + 1)
        for d in durations:
            counts[bisect.bisect_left(BUCKETS, d)] += 1
        cumulative, running = [], 0
        for bound, c in zip([*map(str, BUCKETS), "+Inf"], counts):
            running += c
            cumulative.append((bound, running))
        h = HistogramMetricFamily("chute_step_duration_seconds",
                                  "Durations of recently finished steps")
        h.add_metric([], cumulative, sum_value=sum(durations))
        yield h
        yield GaugeMetricFamily("chute_queue_depth", "Steps waiting to start", value=queued)


def _registry(request: Request) -> CollectorRegistry:
    ctx = request.app.state.ctx
    reg = ctx.extras.get("prometheus")
    if reg is None:
        reg = CollectorRegistry(auto_describe=False)
        reg.register(StoreCollector(ctx.store))
        ctx.extras["prometheus"] = reg
    return reg


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})
def metrics(request: Request) -> Response:
    return Response(generate_latest(_registry(request)), media_type=CONTENT_TYPE_LATEST)
