"""``steps`` templates: sequential groups of parallel steps (Argo's Steps/StepGroup nodes)."""

from __future__ import annotations

from collections import ChainMap
from typing import Any

from chute.engine import phases as P
from chute.engine.calls import continues_on, expand, should_run
from chute.engine.frame import Frame, Gate
from chute.engine.nodes import Node
from chute.engine.outputs import compound_outputs
from chute.engine.state import RunState
from chute.engine.vars import aggregate_vars, input_vars, node_vars
from chute.errors import ChuteError


class StepsFrame(Frame):
    """Runs group after group; a group is done when all its steps are; a failed step
    (without ``continueOn``) fails the group and the template."""

    refs = "steps"

    def __init__(self, st: RunState, name, display, tmpl, tscope, inputs, boundary_id, parent,
                 owner):
        self.st, self.tmpl, self.tscope = st, tmpl, tscope
        self.node = st.add_node(name, display, P.STEPS, template_name=tmpl.get("name"),
                                boundary_id=boundary_id, parent=parent, inputs=inputs,
                                owner=owner)
        st.transition(self.node, P.RUNNING)
        self.local: dict[str, str] = {}
        self.ctx = ChainMap(self.local, input_vars(inputs), st.globals)
        self.groups: list[list[dict[str, Any]]] = tmpl.get("steps") or []
        self.gate = Gate(tmpl.get("parallelism"))
        self.index = -1
        self.group: Node | None = None
        self.pending = 0
        self.prev: list[Node] = []
        self.members: list[tuple[dict, list[tuple[Node, dict]], bool]] = []
        self.gated: set[str] = set()
        self.call_of: dict[str, dict] = {}
        st.run_later(self.next_group)

    def next_group(self) -> None:
        st, i = self.st, self.index + 1
        self.index = i
        if i >= len(self.groups):
            self.complete()
            return
        group = st.add_node(f"{self.node.name}[{i}]", f"[{i}]", P.STEP_GROUP,
                            template_name=self.node.template_name, boundary_id=self.node.id,
                            parent=self.node, owner=None, link_parent=(i == 0))
        for prev in self.prev:
            st.link(prev, group)
        st.transition(group, P.RUNNING)
        self.group, self.pending, self.members = group, 0, []
        for step in self.groups[i]:
            self._start_step(step, group)
        if self.pending == 0:
            st.run_later(self.group_done)

    def _start_step(self, step: dict[str, Any], group: Node) -> None:
        st = self.st
        base = f"{group.name}.{step.get('name')}"
        children: list[tuple[Node, dict]] = []
        looped = any(step.get(k) is not None for k in ("withItems", "withParam", "withSequence"))
        self.members.append((step, children, looped))
        try:
            expanded = list(expand(step, self.ctx))
        except ChuteError as exc:
            self.pending += 1
            node = st.error_node(base, step.get("name") or "", step.get("template"),
                                 self.node.id, group, self, str(exc))
            children.append((node, step))
            return
        for suffix, sub in expanded:
            name, display = base + suffix, (step.get("name") or "") + suffix
            self.pending += 1
            try:
                run = should_run(sub)
            except ChuteError as exc:
                children.append((st.error_node(name, display, sub.get("template"), self.node.id,
                                               group, self, str(exc)), sub))
                continue
            if not run:
                node = st.skip_node(name, display, sub, self.tscope, self.node.id, group,
                                    self, P.SKIPPED, f"when '{sub.get('when')}' evaluated false")
                self.watch(st, node, sub)
                children.append((node, sub))
                continue
            slot: list = []
            children.append((slot, sub))  # type: ignore[arg-type] - filled when started

            def start(name=name, display=display, sub=sub, slot=slot, idx=len(children) - 1):
                node = st.execute(name=name, display=display, call=sub, scope=self.tscope,
                                  boundary_id=self.node.id, parent=group, owner=self)
                self.gated.add(node.id)
                self.called(st, node, sub)
                children[idx] = (node, sub)

            self.gate.submit(start)

    def on_child(self, st: RunState, child: Node) -> None:
        if child.id in self.gated:
            self.gated.discard(child.id)
            self.gate.release()
        self.pending -= 1
        if self.tmpl.get("failFast") and child.phase in P.FAILED_OR_ERROR:
            # failFast on a steps template: items not started yet never start
            self.pending -= self.gate.drop_waiting()
        if self.pending == 0:
            self.group_done()

    def group_done(self) -> None:
        st, group = self.st, self.group
        assert group is not None
        failed: Node | None = None
        nodes: list[Node] = []
        for step, children, looped in self.members:
            kids = [n for n, _ in children if isinstance(n, Node)]
            nodes.extend(kids)
            prefix = f"steps.{step.get('name')}"
            if looped:
                self.local.update(aggregate_vars(prefix, kids))
            elif kids:
                self.local.update(node_vars(prefix, kids[0]))
            for n, sub in children:
                if isinstance(n, Node) and n.phase in P.FAILED_OR_ERROR \
                        and not continues_on(sub, n.phase) and failed is None:
                    failed = n
                # a lifecycle hook that ended Error fails the template; continueOn
                # does not cover it (Argo's lifecyclehook.md)
                if isinstance(n, Node) and failed is None:
                    failed = st.lifecycle.error_of(n)
        if failed is not None:
            msg = f"child '{failed.id}' failed"
            st.finish(group, P.FAILED, msg)
            st.finish(self.node, P.FAILED, msg)
            return
        st.finish(group, P.SUCCEEDED)
        self.prev = nodes or [group]
        self.next_group()

    def complete(self) -> None:
        outputs, error = compound_outputs(self.tmpl, self.ctx)
        if error:
            self.st.finish(self.node, P.ERROR, error)
            return
        self.node.outputs = outputs
        if outputs:
            self.st._apply_globals(self.node)
        self.st.finish(self.node, P.SUCCEEDED)
