"""The workflow's root: runs the entrypoint, then the ``onExit`` handler, and sets the
workflow's phase.

``workflow.status`` is a global, as in Argo, which sets it from the root node's phase:
``Running`` while the entrypoint runs (step- and task-level exit handlers included), the
entrypoint's end (Succeeded, Failed or Error) once it ended, in the workflow's ``onExit``
handler. ``workflow.failures`` (the pod nodes failed so far) and ``workflow.duration``
are live everywhere; the latter stops at the workflow's exit handler.
"""

from __future__ import annotations

import dataclasses

from chute.engine import phases as P
from chute.engine.frame import Frame, exit_hook, with_workflow_arguments
from chute.engine.nodes import Node
from chute.engine.state import RunState


class RootFrame(Frame):
    """Waits for the entrypoint node and then for the exit handler."""

    def __init__(self, st: RunState):
        self.st = st
        self.node: Node | None = None
        self.exit_node: Node | None = None

    def start(self) -> None:
        st = self.st
        args = {"parameters": [{"name": k, "value": v} for k, v in st.plan.parameters.items()]}
        wf_arts = (st.plan.spec.get("arguments") or {}).get("artifacts")
        if wf_arts:
            args["artifacts"] = wf_arts
        call = {"template": st.plan.entrypoint, "arguments": args}
        st.globals["workflow.status"] = P.WF_RUNNING
        if st.finished_duration_var:  # Argo updates it on every pass: read it when used
            st.globals.live("workflow.duration", st.finished_duration_var)
        self.node = st.execute(name=st.plan.name, display=st.plan.name, call=call,
                               scope=st.plan.root_scope, boundary_id=None, parent=None,
                               owner=self)
        st.root = self.node
        # spec.hooks (but exit): evaluated over the globals while the entrypoint runs
        st.lifecycle.guard(st, self, self.node, st.plan.spec, lambda: st.globals,
                           st.plan.root_scope, None)

    def child_done(self, st: RunState, child: Node) -> None:
        if st.lifecycle.hook_ended(st, child) is not None:
            return  # a workflow-level hook ended: the workflow goes on once all did
        if child is self.node:
            # Argo sets workflow.status from the entrypoint's end before it evaluates the
            # workflow's hooks a last time, and waits for them before the exit handler
            st.globals["workflow.status"] = _wf_phase(self.node.phase)
            if not st.lifecycle.node_ended(st, child, self.entrypoint_done):
                self.entrypoint_done()
        elif child is self.exit_node:
            self.complete()

    def entrypoint_done(self) -> None:
        """The entrypoint and the workflow-level hooks that started ended: run the exit
        handler, or end the workflow."""
        st = self.st
        hook = exit_hook(st.plan.spec)  # spec.onExit, or spec.hooks.exit
        # terminate skips the exit handler, except one that started before a restart
        # (re-attached to collect its cancelled end, never left Running)
        if hook and (not st.stopping_hard or st.started_before(f"{st.plan.name}.onExit")):
            self.run_exit_handler(hook)
            return
        self.complete()

    def run_exit_handler(self, hook: dict) -> None:
        """Run the workflow's exit handler (node ``<workflow>.onExit``); its arguments are
        the hook's, else the workflow's, and see the final ``workflow.status``."""
        st = self.st
        assert self.node is not None
        st.stopping = st.stopping_hard  # `stop` halts the main flow; the handler still runs
        st.globals["workflow.status"] = _wf_phase(self.node.phase)
        if st.finished_duration_var:
            st.globals["workflow.duration"] = st.finished_duration_var()
        call = {k: v for k, v in with_workflow_arguments(hook, st).items()
                if k in ("template", "templateRef", "arguments")}
        self.exit_node = st.execute(name=f"{st.plan.name}.onExit", display=f"{st.plan.name}.onExit",
                                    call=call, scope=st.plan.root_scope, boundary_id=None,
                                    parent=None, owner=self)

    def complete(self) -> None:
        st = self.st
        assert self.node is not None
        phase = _wf_phase(self.node.phase)
        message = self.node.message if phase != P.WF_SUCCEEDED else None
        if self.exit_node is not None and self.exit_node.phase in P.FAILED_OR_ERROR \
                and phase == P.WF_SUCCEEDED:
            phase, message = P.WF_FAILED, f"exit handler failed: {self.exit_node.message or ''}"
        broken = st.lifecycle.broken_of(self.node)
        if broken and phase != P.WF_ERROR:  # Argo marks the entrypoint node Error
            phase, message = P.WF_ERROR, broken
        end_unreached(st)
        st.complete_workflow(phase, message)


def end_unreached(st: RunState) -> None:
    """End the nodes ``chute retry`` reset that the retried run never reached, so that no
    row is left Pending in a finished workflow: an exit handler a ``terminate`` kept from
    running again, a task after a fail-fast. Argo's retry deletes these nodes and they are
    never created again; chute keeps the rows (and their history), ended Skipped with the
    reason (the stop's, as on the pods it kept from starting)."""
    why = st.stop_message or "not reached when the workflow ran again"
    ended: set[str] = set()
    for nid, rec in list(st.recorded.items()):
        if nid in st.nodes or P.is_terminal(rec.phase):
            continue
        node = dataclasses.replace(rec, children=list(rec.children))
        st.nodes[nid] = node
        ended.add(nid)
        # a node left Running (never seen so far) cannot be Skipped: it failed
        st.transition(node, P.SKIPPED if rec.phase == P.PENDING else P.FAILED, why)
    if not ended:
        return
    # the nodes created again have only the edges this run gave them: give back the
    # recorded edges into the ended ones, so the graph still shows them where they were
    for nid, rec in st.recorded.items():
        node = st.nodes.get(nid)
        if node is not None and nid not in ended:
            for child in rec.children:
                if child in ended and child not in node.children:
                    st.link(node, st.nodes[child])


def _wf_phase(node_phase: str) -> str:
    if node_phase == P.SUCCEEDED:
        return P.WF_SUCCEEDED
    if node_phase == P.ERROR:
        return P.WF_ERROR
    if node_phase in (P.FAILED,):
        return P.WF_FAILED
    return P.WF_SUCCEEDED if node_phase in (P.SKIPPED, P.OMITTED) else P.WF_ERROR
