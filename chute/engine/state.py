"""The run's state machine: events in, decisions out, no IO and an injected clock.

A :class:`RunState` owns the node tree of one workflow. The controller feeds it events
(:meth:`start`, :meth:`pod_finished`, :meth:`tick`) and collects :class:`Decisions`
(nodes to insert or update, journal entries, pods to launch or re-attach) with
:meth:`drain`; it commits them before acting on them.

Scheduling is event driven: a finished node notifies the frame that waits for it (a DAG,
a steps template, a retry), which decrements its dependants' counters; no rescan of the
tree per event, so total work is O(nodes + edges). Notifications go through a queue, never
recursion, so a 10,000-long chain does not grow the stack.

Crash recovery is replay: node ids are deterministic (Argo's hash of the node name), so
a state rebuilt from the spec with ``recorded`` (the nodes in the store) takes the recorded
result of a pod that finished instead of launching it again, and re-attaches to one that
was Running. A succeeded step never runs twice.

The kinds of node live in modules of their own, each driven through this class: Pod nodes
and the launch queue in :mod:`~chute.engine.pod_nodes`, memoize in :mod:`~chute.engine.memo`,
Suspend nodes in :mod:`~chute.engine.suspend`, DAGs, steps, retries and the root in their
frames (:mod:`~chute.engine.dag`, ``steps``, ``retry``, ``root``). Two mixins of this
class hold what they all share: the node bookkeeping (creation, links, transitions, what
is written) in :mod:`~chute.engine.node_tree`, and the node a call makes (its template
run as the node of its kind) in :mod:`~chute.engine.call_nodes`.
"""

from __future__ import annotations

import heapq
import json
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chute.engine import phases as P
from chute.engine.call_nodes import CallNodes
from chute.engine.frame import Frame, Gate, exit_hook, template_kind  # noqa: F401 - re-exported
from chute.engine.hooks import Lifecycle
from chute.engine.memo import CacheLookup, Memo
from chute.engine.node_tree import MANY_CHILDREN, NodeTree
from chute.engine.nodes import Node
from chute.engine.plan import Plan
from chute.engine.pod import LaunchRequest, PodOutcome
from chute.engine.pod_nodes import Pods
from chute.engine.suspend import Suspends
from chute.engine.vars import Failures, Globals, global_vars
from chute.errors import ChuteError


@dataclass
class Decisions:
    """What the controller must persist (first) and then do."""

    new_nodes: list[Node] = field(default_factory=list)
    changed_nodes: list[Node] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    launches: list[LaunchRequest] = field(default_factory=list)
    reattach: list[Node] = field(default_factory=list)
    cancels: list[Node] = field(default_factory=list)
    cache_writes: list[dict[str, Any]] = field(default_factory=list)  # memoized results
    workflow: dict[str, Any] | None = None  # workflow columns to update

    def empty(self) -> bool:
        """Whether there is nothing to do."""
        return not (self.new_nodes or self.changed_nodes or self.events or self.launches
                    or self.reattach or self.cancels or self.cache_writes or self.workflow)


class RunState(NodeTree, CallNodes):
    """The node tree of one workflow and the rules that move it forward."""

    def __init__(self, plan: Plan, *, now: float, recorded: Mapping[str, Node] | None = None,
                 cache: CacheLookup | None = None, generation: int = 0):
        self.plan = plan
        # how many times this workflow finished before (``chute retry`` runs it again): its
        # final transition's id must differ from theirs, or the journal would drop it
        self.generation = generation
        self.now = now
        self.recorded: dict[str, Node] = dict(recorded or {})
        self.nodes: dict[str, Node] = {}
        self.globals = Globals(global_vars(plan))
        self.failed = Failures()  # workflow.failures: a live global, read when used
        self.globals.live("workflow.failures", self.failed)
        self.global_outputs: dict[str, str] = {}
        self.phase = P.WF_PENDING
        self.message: str | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.launched_ids: set[str] = set()
        self._kinds: dict[int, tuple[dict, str | None]] = {}  # see execute()
        self._owner: dict[str, Frame] = {}
        self._edges: set[tuple[str, str]] = set()  # (parent, child) added by link()
        self.pods = Pods()  # Pod nodes' templates, the launch queue (pod_nodes.py)
        self._queue: deque[Callable[[], None]] = deque()
        # work continuing the callback being run (run_next): it runs before ``_queue``
        self._front: deque[Callable[[], None]] = deque()
        # at most this many callbacks per pass (None: all): a controller sets it so that
        # a thousand tasks becoming ready at once are created, committed and launched a
        # slice per turn (the first launched at once), in the same order as in one pass
        self.budget: int | None = None
        self._left = False  # the budget left work (pending)
        self._depth = 0  # passes (_run) running, nested
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self._new: dict[str, Node] = {}
        self._dirty: dict[str, Node] = {}
        # nodes whose only change is new children (see _children_due), those that got
        # one since the last drain, and the length of long lists when last written
        self._grown: dict[str, Node] = {}
        self._grew: dict[str, int] = {}  # node id -> children added since the last drain
        self._fresh: set[str] = set()  # in _grown since the last drain only
        self._children_written: dict[str, int] = {}
        self._events: list[dict[str, Any]] = []
        self._launches: list[LaunchRequest] = []
        self._reattach: list[Node] = []
        self._cancels: list[Node] = []
        self.memo = Memo(cache)  # memoize keys, results and cache writes (memo.py)
        self._wf_update: dict[str, Any] = {}
        self.root: Node | None = None
        self.stop_message: str | None = None
        self.shutdown_requested: str | None = None  # the Stop/Terminate applied
        self.suspended = bool(plan.spec.get("suspend"))  # no new pods start while set
        self.suspends = Suspends()  # Suspend nodes waiting (suspend.py)
        self.lifecycle = Lifecycle()  # lifecycle hooks waiting for their expression (hooks.py)
        self.stopping = False  # no new pods start (stop/terminate)
        self.stopping_hard = False  # terminate: exit handlers do not run either
        self.finished_duration_var: Callable[[], str] | None = (
            lambda: str(round(self.now - (self.started_at or self.now), 3)))

    # -- events ----------------------------------------------------------------------------

    def start(self) -> None:
        """Create the root node (the entrypoint) and everything that can start at once."""
        from chute.engine.root import RootFrame

        self.phase = P.WF_RUNNING
        self.started_at = self.now
        self._wf_update.update(phase=P.WF_RUNNING, started_at=self.now)
        deadline = self.plan.spec.get("activeDeadlineSeconds")
        if deadline:
            start = self.started_at if self.started_at is not None else self.now
            self.at(start + float(deadline), lambda: self.shutdown(
                "Step exceeded its deadline", workflow_message="Workflow exceeded its deadline"))
        RootFrame(self).start()
        self._run()

    def restore_control(self, *, suspended: bool, shutdown: str | None) -> None:
        """On adoption, before :meth:`start`: the workflow's suspend and stop requests
        hold during the replay, so a stopped run's retries and pending pods do not go on
        (R-8); running pods are cancelled when the controller applies the stop again."""
        self.suspended = suspended
        if shutdown:
            self.shutdown(f"Stopped with strategy '{shutdown}'", hard=shutdown == "Terminate")

    def request_shutdown(self, strategy: str) -> None:
        """``chute stop`` (``Stop``) or ``chute terminate`` (``Terminate``), applied once
        each; a terminate after a stop escalates it (ends a running exit handler too)."""
        if strategy == self.shutdown_requested or self.shutdown_requested == "Terminate":
            return
        self.shutdown_requested = strategy
        self.shutdown(f"Stopped with strategy '{strategy}'", hard=strategy == "Terminate")

    def shutdown(self, message: str, *, workflow_message: str | None = None,
                 hard: bool = False) -> None:
        """Stop the run: no new pods start, running ones are cancelled, suspends end.
        ``hard`` (terminate) also skips the exit handler."""
        if self.done:
            return
        self.settle()
        self.stopping = True
        self.suspended = False  # let queued pods drain (they finish Failed, unstarted)
        self.stopping_hard = self.stopping_hard or hard
        self.stop_message = workflow_message or message
        for node in list(self.nodes.values()):
            if node.type == P.POD and node.phase == P.RUNNING:
                node.message = message
                self._cancels.append(node)
            elif node.type == P.SUSPEND and node.phase == P.RUNNING:
                self.finish(node, P.FAILED, message)
        self._run()

    def pod_finished(self, pod_id: str, outcome: PodOutcome, now: float) -> None:
        """A pod attempt ended (the controller read its status and output files)."""
        if self._left:
            self.settle()
        self.now = now
        node = self.nodes.get(pod_id)
        if node is None or node.phase in P.TERMINAL:
            return  # duplicate or late report: terminal states are final
        self.pods.complete(self, node, outcome)
        self._run()

    def tick(self, now: float) -> None:
        """Time passed: fire due timers (suspend durations, retry backoff)."""
        self.settle()
        self.now = now
        while self._timers and self._timers[0][0] <= now:
            _, _, fn = heapq.heappop(self._timers)
            fn()
        self._run()

    def next_timer(self) -> float | None:
        """When the next timer is due, if any."""
        return self._timers[0][0] if self._timers else None

    def mark_running(self, pod_id: str, step_dir: str, now: float) -> Node:
        """Record that a pod is about to be launched in ``step_dir`` (committed first)."""
        node = self.nodes[pod_id]
        node.step_dir = step_dir
        node.started_at = now
        self.transition(node, P.RUNNING)
        self.launched_ids.add(pod_id)
        if self.lifecycle.open:  # hooks may wait for this status: look on the next turn
            self._left = True
        return node

    def relaunch(self, pod_id: str) -> LaunchRequest | None:
        """A new attempt of a Running pod whose earlier launch never started (found on
        adoption); None if the pod is unknown."""
        node = self.nodes.get(pod_id)
        if node is None or pod_id not in self.pods.templates:
            return None
        node.attempt += 1
        self.touch(node)
        return self.request_for(pod_id)

    def request_for(self, pod_id: str) -> LaunchRequest | None:
        """The launch request of a pod's current attempt (for one re-attached after a
        restart: which outputs and artifacts to collect from it); None if unknown."""
        node = self.nodes.get(pod_id)
        if node is None or pod_id not in self.pods.templates:
            return None
        try:
            return self.pods.request(self, node, self.pods.templates[pod_id][0])
        except ChuteError:
            return None

    def drain(self) -> Decisions:
        """Take the decisions made since the last drain."""
        new, dirty = self._new, self._dirty
        changed = [n for i, n in dirty.items() if i not in new] if new else list(dirty.values())
        if self._grown:
            for nid, node in list(self._grown.items()):
                if nid in dirty or nid in new or self._children_due(node):
                    del self._grown[nid]
                    if nid not in dirty and nid not in new:
                        changed.append(node)
        for nodes in (changed, new.values()):
            for node in nodes:
                if len(node.children) >= MANY_CHILDREN:
                    self._children_written[node.id] = len(node.children)
        if self._grew:
            self._grew, self._fresh = {}, set()
        d = Decisions(
            new_nodes=list(new.values()), changed_nodes=changed,
            events=self._events, launches=self._launches, reattach=self._reattach,
            cancels=self._cancels, cache_writes=self.memo.drain() if self.memo.writes else [],
            workflow=self._wf_update or None,
        )
        self._new, self._dirty, self._events = {}, {}, []
        self._launches, self._reattach, self._cancels, self._wf_update = [], [], [], {}
        return d

    @property
    def done(self) -> bool:
        """Whether the workflow reached a final phase."""
        return self.phase in P.WF_TERMINAL

    # -- passes: the work queue, its budget, timers ----------------------------------------

    def run_later(self, fn: Callable[[], None]) -> None:
        """Queue work to run after the current step (keeps the stack flat)."""
        self._queue.append(fn)

    def at(self, when: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` at time ``when`` (on a later tick)."""
        self._seq += 1
        heapq.heappush(self._timers, (when, self._seq, fn))

    def run_next(self, fns: Iterable[Callable[[], None]]) -> None:
        """Run ``fns`` next, in order, before any work queued earlier: as if the callback
        being run called them in place, but each one a callback of its own, so that a
        budget can split a long loop (a fan-out's tasks) over several passes."""
        self._front.extendleft(reversed(list(fns)))

    @property
    def pending(self) -> bool:
        """Whether the budget left work for a later pass (:meth:`proceed`)."""
        return self._left

    def proceed(self) -> None:
        """Go on with the work a budgeted pass left (the controller's next turn). Every
        event (a pod's end, a tick, a control request) first finishes that work, so the
        order of everything the run decides is that of one unbounded pass."""
        self._run()

    def settle(self) -> None:
        """Finish the work a budgeted pass left, all of it (a no-op when there is none,
        and when called from inside a pass: that pass goes on with it)."""
        if self._left:
            budget, self.budget = self.budget, None
            try:
                self._run()
            finally:
                self.budget = budget

    def _run(self) -> None:
        # a pass started from inside another (a stop decided by a callback) runs to the
        # end, as the callback expects; only the outermost pass keeps to the budget
        budget = self.budget if self._depth == 0 else None
        if self._depth == 0:
            self._left = False  # this pass goes on with what the last one left
        n = 0
        self._depth += 1
        try:
            # once the queue is empty, the lifecycle hooks now due fire (Argo evaluates
            # them on every reconcile): their firing is queued work of this pass
            while self._front or self._queue or self.lifecycle.poll(self):
                # the workflow's end is never split: a finished run is committed in full
                if budget is not None and n >= budget and not self.done:
                    break
                (self._front or self._queue).popleft()()
                n += 1
        finally:
            self._depth -= 1
        self._left = bool(self._front or self._queue)
        self._pump_pods()

    # -- suspend and resume (the Suspend nodes are suspend.py's) ---------------------------

    def suspend(self) -> None:
        """``chute suspend``: running steps finish, no new ones start."""
        self.settle()
        self.suspended = True

    def resume(self, values: Mapping[str, str] | None = None) -> None:
        """``chute resume``: unsuspend, and let running suspend nodes go on (their outputs
        take ``values``, else their ``valueFrom.default``)."""
        self.settle()
        self.suspended = False
        self.suspends.resume(self, values)
        self._run()

    def resume_suspends_before(self, at: float, values: Mapping[str, str] | None) -> None:
        """After adoption: suspend nodes that started before the last ``chute resume``
        (made while no controller ran) go on now, with the values it supplied."""
        self.settle()
        self.suspends.resume(self, values, before=at)
        self._run()

    # -- pods (pod_nodes.py) and outputs --------------------------------------------------

    def _pump_pods(self) -> None:
        self.pods.pump(self)
        if self._queue:  # pods failed unstarted by a stop notify their frames
            self._run()

    def _apply_globals(self, node: Node) -> None:
        """``globalName`` outputs become ``workflow.outputs.parameters.X``."""
        for p in (node.outputs or {}).get("parameters") or []:
            if p.get("globalName") and p.get("value") is not None:
                self.set_global_output(p["globalName"], p["value"])
        arts = (node.outputs or {}).get("artifacts")
        if not arts:  # most pods (every succeeded pod comes here)
            return
        tmpl = self.pods.templates.get(node.id, ({}, None))[0]
        declared = {a["name"]: a for a in ((tmpl.get("outputs") or {}).get("artifacts") or [])}
        for a in arts:
            g = a.get("globalName") or (declared.get(a.get("name")) or {}).get("globalName")
            if g:
                self.globals[f"workflow.outputs.artifacts.{g}"] = json.dumps(a)

    def set_global_output(self, name: str, value: str) -> None:
        """Publish a workflow-level output parameter."""
        self.global_outputs[name] = value
        self.globals[f"workflow.outputs.parameters.{name}"] = value
        self._wf_update["outputs"] = {
            "parameters": [{"name": k, "value": v} for k, v in self.global_outputs.items()]}

    # -- workflow end ----------------------------------------------------------------------

    def complete_workflow(self, phase: str, message: str | None) -> None:
        """The workflow reached its final phase."""
        if self.stop_message and phase != P.WF_SUCCEEDED:
            message = self.stop_message
        self.phase = phase
        self.message = message
        self.finished_at = self.now
        self._wf_update.update(phase=phase, message=message, finished_at=self.now)
        self._events.append({
            "transition_id": f"{self.plan.uid}//{phase}"
            + (f"/{self.generation}" if self.generation else ""), "workflow_uid": self.plan.uid,
            "node_id": None, "from_phase": P.WF_RUNNING, "to_phase": phase, "at": self.now,
            "message": message,
        })

    def failures(self) -> str:
        """``workflow.failures``: the failed and errored pod nodes so far, as JSON."""
        return self.failed()
