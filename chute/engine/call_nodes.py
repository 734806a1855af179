"""The node a call makes (a step, a task, the root's entrypoint, a retry's attempt): the
template it calls, resolved and run as the node of its kind (a pod, a DAG, steps, a
suspend, a retry around any of them), or an Error, Skipped or Omitted node in its place.

A mixin of :class:`~chute.engine.state.RunState`, separate from the node bookkeeping
(:mod:`~chute.engine.node_tree`) it builds on: this is where the kinds of node meet, each
started through its own module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from chute.engine import phases as P
from chute.engine.frame import template_kind
from chute.engine.nodes import Node
from chute.engine.params import resolve_inputs
from chute.errors import ChuteError

if TYPE_CHECKING:
    from chute.engine.frame import Frame
    from chute.engine.plan import TemplateScope

NODE_TYPE = {"container": P.POD, "script": P.POD, "dag": P.DAG, "steps": P.STEPS,
             "suspend": P.SUSPEND}


class CallNodes:
    """The call side of :class:`~chute.engine.state.RunState` (a mixin over its ``plan``,
    ``globals``, ``pods``, ``suspends``, ``_kinds`` and its node bookkeeping)."""

    def execute(self, *, name: str, display: str, call: Mapping[str, Any], scope: TemplateScope,
                boundary_id: str | None, parent: Node | None, owner: Frame,
                retry_attempt: int | None = None) -> Node:
        """Run the template a step/task/root calls, as node ``name``; returns its node."""
        try:
            tmpl, tscope = self.plan.resolve(call, scope)
        except ChuteError as exc:
            return self.error_node(name, display, call.get("template"), boundary_id, parent,
                                   owner, str(exc))
        if tmpl.get("retryStrategy") and retry_attempt is None:
            from chute.engine.retry import RetryFrame

            return RetryFrame(self, name=name, display=display, call=call, tmpl=tmpl,
                              scope=scope, boundary_id=boundary_id, parent=parent,
                              owner=owner).node
        known = self._kinds.get(id(tmpl))  # (template, its kind): pinned, as Pods._static
        if known is None or known[0] is not tmpl:
            known = self._kinds[id(tmpl)] = (tmpl, template_kind(tmpl))
        kind = known[1]
        tname = tmpl.get("name")
        try:
            inputs = resolve_inputs(tmpl, call.get("arguments"), self.globals)
        except ChuteError as exc:
            return self.error_node(name, display, tname, boundary_id, parent, owner, str(exc),
                                   type_=NODE_TYPE.get(kind or "", P.POD))
        if kind in ("container", "script"):
            return self.pods.start(self, name, display, tmpl, inputs, boundary_id, parent,
                                   owner, retry_attempt)
        if kind == "dag":
            from chute.engine.dag import DagFrame

            return DagFrame(self, name, display, tmpl, tscope, inputs, boundary_id, parent,
                            owner).node
        if kind == "steps":
            from chute.engine.steps import StepsFrame

            return StepsFrame(self, name, display, tmpl, tscope, inputs, boundary_id, parent,
                              owner).node
        if kind == "suspend":
            return self.suspends.start(self, name, display, tmpl, inputs, boundary_id, parent,
                                       owner)
        return self.error_node(name, display, tname, boundary_id, parent, owner,
                               f"not supported locally: {kind} template {tname!r}")

    def error_node(self, name: str, display: str, template_name: str | None,
                   boundary_id: str | None, parent: Node | None, owner: Frame, message: str,
                   type_: str = P.SKIPPED_TYPE) -> Node:
        """A node that could not even start (bad reference, bad parameter): phase Error."""
        node = self.add_node(name, display, type_, template_name=template_name,
                             boundary_id=boundary_id, parent=parent, owner=owner)
        self.finish(node, P.ERROR, message)
        return node

    def skip_node(self, name: str, display: str, call: Mapping[str, Any], scope: TemplateScope,
                  boundary_id: str | None, parent: Node | None, owner: Frame, phase: str,
                  message: str) -> Node:
        """A Skipped (``when`` false) or Omitted (``depends`` false) node; its template's
        output parameters take their ``valueFrom.default``, as Argo does."""
        try:
            tmpl, _ = self.plan.resolve(call, scope)
        except ChuteError:
            tmpl = {}
        node = self.add_node(name, display, P.SKIPPED_TYPE, template_name=tmpl.get("name"),
                             boundary_id=boundary_id, parent=parent, owner=owner)
        defaults = [{"name": p["name"], "value": p["valueFrom"]["default"]}
                    for p in ((tmpl.get("outputs") or {}).get("parameters") or [])
                    if (p.get("valueFrom") or {}).get("default") is not None]
        if defaults:
            node.outputs = {"parameters": defaults}
        self.finish(node, phase, message)
        return node

