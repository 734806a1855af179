"""The workflow's root: runs the entrypoint, then the ``onExit`` handler, and sets the
workflow's phase (an exit handler sees ``workflow.status`` and ``workflow.failures``)."""

from __future__ import annotations

from chute.engine import phases as P
from chute.engine.frame import Frame
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
        self.node = st.execute(name=st.plan.name, display=st.plan.name, call=call,
                               scope=st.plan.root_scope, boundary_id=None, parent=None,
                               owner=self)
        st.root = self.node

    def child_done(self, st: RunState, child: Node) -> None:
        if child is self.node:
            on_exit = st.plan.spec.get("onExit")
            # terminate skips the exit handler, except one that started before a restart
            # (re-attached to collect its cancelled end, never left Running)
            if on_exit and (not st.stopping_hard or st.started_before(f"{st.plan.name}.onExit")):
                self.run_exit_handler(on_exit)
                return
            self.complete()
        elif child is self.exit_node:
            self.complete()

    def run_exit_handler(self, template: str) -> None:
        st = self.st
        assert self.node is not None
        st.stopping = st.stopping_hard  # `stop` halts the main flow; the handler still runs
        st.globals["workflow.status"] = _wf_phase(self.node.phase)
        st.globals["workflow.failures"] = st.failures()
        if st.finished_duration_var:
            st.globals["workflow.duration"] = st.finished_duration_var()
        args = {"parameters": [{"name": k, "value": v} for k, v in st.plan.parameters.items()]}
        self.exit_node = st.execute(name=f"{st.plan.name}.onExit", display=f"{st.plan.name}.onExit",
                                    call={"template": template, "arguments": args},
                                    scope=st.plan.root_scope, boundary_id=None, parent=None,
                                    owner=self)

    def complete(self) -> None:
        st = self.st
        assert self.node is not None
        phase = _wf_phase(self.node.phase)
        message = self.node.message if phase != P.WF_SUCCEEDED else None
        if self.exit_node is not None and self.exit_node.phase in P.FAILED_OR_ERROR \
                and phase == P.WF_SUCCEEDED:
            phase, message = P.WF_FAILED, f"exit handler failed: {self.exit_node.message or ''}"
        st.complete_workflow(phase, message)


def _wf_phase(node_phase: str) -> str:
    if node_phase == P.SUCCEEDED:
        return P.WF_SUCCEEDED
    if node_phase == P.ERROR:
        return P.WF_ERROR
    if node_phase in (P.FAILED,):
        return P.WF_FAILED
    return P.WF_SUCCEEDED if node_phase in (P.SKIPPED, P.OMITTED) else P.WF_ERROR
