"""Suspend nodes and ``chute suspend``/``chute resume`` in the state machine.

A ``suspend`` template makes a Suspend node that stays Running until its ``duration``
passes (a timer) or the workflow is resumed; at resume its output parameters take the
values given (Argo's intermediate parameters), else their ``valueFrom.default``. A node
that ended before a restart keeps its recorded end (R-8). Suspending the whole workflow
(``RunState.suspended``) is a flag the pod queue honours: running steps finish, no new
ones start.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from chute.engine import phases as P
from chute.engine.durations import parse_duration
from chute.engine.nodes import Node
from chute.engine.vars import input_vars, substitute
from chute.errors import ChuteError

if TYPE_CHECKING:
    from chute.engine.frame import Frame
    from chute.engine.state import RunState


class Suspends:
    """The run's Suspend nodes still waiting, and the rules that end them."""

    def __init__(self) -> None:
        self.waiting: dict[str, Mapping[str, Any]] = {}  # running suspend node id -> template

    def start(self, st: RunState, name: str, display: str, tmpl: Mapping[str, Any],
              inputs: dict, boundary_id: str | None, parent: Node | None,
              owner: Frame) -> Node:
        """Create the Suspend node of ``tmpl`` (or replay its recorded end) and, with a
        ``duration``, the timer that ends it."""
        node = st.add_node(name, display, P.SUSPEND, template_name=tmpl.get("name"),
                           boundary_id=boundary_id, parent=parent, inputs=inputs, owner=owner)
        st.transition(node, P.RUNNING)
        rec = st.recorded.get(node.id)
        if rec is not None and P.is_terminal(rec.phase):  # ended before a restart: resumed,
            node.outputs = rec.outputs                    # or failed by a stop
            st.finish(node, rec.phase, rec.message)
            return node
        self.waiting[node.id] = tmpl
        duration = (tmpl.get("suspend") or {}).get("duration")
        if duration not in (None, ""):
            ctx = ChainMap(input_vars(inputs), st.globals)
            try:
                seconds = parse_duration(substitute(str(duration), ctx))
            except ChuteError as exc:
                st.finish(node, P.ERROR, str(exc))
                return node
            started = node.started_at or st.now

            def wake() -> None:
                if node.phase == P.RUNNING:
                    self.finish(st, node, tmpl)

            st.at(started + seconds, wake)
        return node

    def resume(self, st: RunState, values: Mapping[str, str] | None,
               before: float | None = None) -> None:
        """End the running Suspend nodes (only those started before ``before``, if
        given), their outputs taking ``values``."""
        for nid, tmpl in list(self.waiting.items()):
            node = st.nodes[nid]
            if node.phase == P.RUNNING and (before is None or (node.started_at or before)
                                            < before):
                self.finish(st, node, tmpl, values)

    def finish(self, st: RunState, node: Node, tmpl: Mapping[str, Any],
               values: Mapping[str, str] | None = None) -> None:
        """A Suspend node ends (resumed or its duration passed): Succeeded, with its
        output parameters from ``values`` or their ``valueFrom.default``."""
        params = []
        for p in ((tmpl.get("outputs") or {}).get("parameters") or []):
            vf = p.get("valueFrom") or {}
            value = (values or {}).get(p["name"], vf.get("default"))
            if value is not None:
                params.append({"name": p["name"], "value": value})
        if params:
            node.outputs = {"parameters": params}
        self.waiting.pop(node.id, None)
        st.finish(node, P.SUCCEEDED)
