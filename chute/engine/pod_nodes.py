"""Pod nodes in the state machine: how one starts, waits for a slot, and completes.

Starting a Pod node replays first (a pod that ended before a restart takes its recorded
result and never runs again; one still Running is re-attached), then tries the memoize
cache, else queues a launch request. Queued launches leave the queue, in order, while the
workflow's ``parallelism`` has room and the run is neither suspended nor stopping (a
stopping run fails them unstarted). A completed pod's outputs are collected and checked
against its template; a success publishes its global outputs and its memoized result.
The launch request and outcome themselves are :mod:`chute.engine.pod`'s.
"""

from __future__ import annotations

from collections import ChainMap, deque
from typing import TYPE_CHECKING, Any

from chute.engine import phases as P
from chute.engine.memo import memoize_of
from chute.engine.nodes import Node
from chute.engine.pod import (
    LaunchRequest,
    PodOutcome,
    collect_outputs,
    launch_request,
    launch_tagless,
    pod_vars,
)
from chute.engine.vars import input_vars
from chute.errors import ChuteError

if TYPE_CHECKING:
    from chute.engine.frame import Frame
    from chute.engine.state import RunState


class Pods:
    """The run's Pod nodes: each one's template and variables, the launches waiting for
    a slot, and how many pods run."""

    def __init__(self) -> None:
        # pod id -> [template, its variables (a ChainMap, made when first read: most pods'
        # never are, see ctx()), the node, its retries]
        self.templates: dict[str, list] = {}
        self.pending: deque[LaunchRequest] = deque()
        self.running = 0
        # id(template) -> [template (pinned: its id stays its own), its pod_vars, whether
        # no launch field holds a tag, then the request its pods copy (see request()),
        # its memoize]
        self._static: dict[int, list] = {}

    def start(self, st: RunState, name: str, display: str, tmpl: dict[str, Any], inputs: dict,
              boundary_id: str | None, parent: Node | None, owner: Frame,
              retry_attempt: int | None) -> Node:
        """Create the Pod node of ``tmpl`` and replay, re-attach, memoize or queue it."""
        node = st.add_node(name, display, P.POD, template_name=tmpl.get("name"),
                           boundary_id=boundary_id, parent=parent, inputs=inputs, owner=owner)
        entry = self._of(tmpl)
        self.templates[node.id] = [tmpl, None, node, retry_attempt]
        rec = st.recorded.get(node.id) if st.recorded else None
        if rec is not None and P.is_terminal(rec.phase):
            # Finished before a restart: take its recorded result, never run it again.
            node.step_dir, node.exit_code, node.outputs = rec.step_dir, rec.exit_code, rec.outputs
            node.cached = rec.cached
            node.started_at = rec.started_at
            st._apply_globals(node)
            st.finish(node, rec.phase, rec.message)
            node.finished_at = rec.finished_at
            return node
        memo = entry[4]
        # a pod still running from before a restart is not looked up, but it must still
        # store its result under its key when it succeeds
        if memo and st.memo.hit(st, node, memo, self.ctx(st, node.id),
                                lookup=rec is None or rec.phase == P.PENDING):
            return node
        if rec is not None and rec.phase == P.RUNNING and rec.step_dir:
            node.step_dir = rec.step_dir
            node.phase = P.RUNNING
            self.running += 1
            st.launched_ids.add(node.id)
            st._reattach.append(node)
            return node
        try:
            req = self.request(st, node, tmpl, entry)
        except ChuteError as exc:
            st.finish(node, P.ERROR, str(exc))
            return node
        self.pending.append(req)
        return node

    def _of(self, tmpl: dict[str, Any]) -> list:
        """What the run's pods of ``tmpl`` share (see ``_static``), made at the first."""
        entry = self._static.get(id(tmpl))
        if entry is None or entry[0] is not tmpl:
            entry = self._static[id(tmpl)] = [tmpl, pod_vars(tmpl), launch_tagless(tmpl), None,
                                              memoize_of(tmpl)]
        return entry

    def ctx(self, st: RunState, pod_id: str) -> ChainMap:
        """The variables a pod's template sees (``pod.name``, its inputs, its outputs'
        paths, the globals), made on first use: a pod whose template has no tag and no
        output parameter (a chain's no-op) never needs them."""
        known = self.templates[pod_id]
        if known[1] is None:
            node = known[2]
            local = {"pod.name": node.id, "node.name": node.name,
                     "retries": str(known[3] or 0)}
            known[1] = ChainMap(local, input_vars(node.inputs), self._of(known[0])[1],
                                st.globals)
        return known[1]

    def request(self, st: RunState, node: Node, tmpl: dict[str, Any],
                entry: list | None = None) -> LaunchRequest:
        """The launch request of ``node``'s current attempt. The request of a template
        whose launch fields hold no tag (most: an SDK step without inputs, a command) is
        made once per run and copied with each pod's ids: substituting the same strings
        for every pod was most of a launch request's cost (its lists are shared, and
        nothing changes them)."""
        entry = entry or self._of(tmpl)
        if not entry[2]:
            return launch_request(st.plan.uid, node.id, node.attempt, tmpl,
                                  self.ctx(st, node.id))
        if entry[3] is None:
            entry[3] = launch_request(st.plan.uid, node.id, node.attempt, tmpl,
                                      self.ctx(st, node.id))
            return entry[3]
        # a copy with this pod's ids (dataclasses.replace re-runs __init__ over every
        # field: several times the cost of this)
        req = object.__new__(LaunchRequest)
        req.__dict__.update(entry[3].__dict__, node_id=node.id, attempt=node.attempt)
        return req

    def pump(self, st: RunState) -> None:
        """Hand queued launches to the controller while ``parallelism`` allows."""
        if st.suspended:
            return
        limit = st.plan.parallelism
        while self.pending and (limit is None or self.running < limit):
            req = self.pending.popleft()
            node = st.nodes[req.node_id]
            if node.phase in P.TERMINAL:
                continue
            if st.stopping:
                st.finish(node, P.FAILED, st.stop_message or "workflow shutdown")
                continue
            self.running += 1
            st._launches.append(req)

    def complete(self, st: RunState, node: Node, outcome: PodOutcome) -> None:
        """A pod attempt ended: collect its outputs and finish its node."""
        self.running -= 1
        known = self.templates.get(node.id)
        tmpl = known[0] if known is not None else {}
        # the variables only for output parameters (the only part that reads them)
        ctx = (self.ctx(st, node.id) if known is not None else ChainMap(st.globals)) if (
            (tmpl.get("outputs") or {}).get("parameters")) else {}
        outputs, error = collect_outputs(tmpl, outcome, ctx)
        node.outputs = outputs
        node.exit_code = outcome.exit_code
        if outcome.started_at:
            node.started_at = outcome.started_at
        phase, message = outcome.phase, outcome.message or None
        if st.stopping and phase != P.SUCCEEDED and node.message:
            message = node.message
        if error and phase == P.SUCCEEDED:
            phase, message = P.ERROR, error
        if phase == P.SUCCEEDED:
            if "parameters" in outputs or "artifacts" in outputs:  # (what _apply_globals reads)
                st._apply_globals(node)
            if node.id in st.memo.keys:  # memoized: its outputs are stored under its key
                st.memo.record(st, node, outputs)
        if node.phase == P.PENDING:
            st.transition(node, P.RUNNING)
        st.finish(node, phase, message)
        if outcome.finished_at:
            node.finished_at = outcome.finished_at
