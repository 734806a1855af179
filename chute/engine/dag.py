"""``dag`` templates: tasks scheduled by in-degree counting, ``depends`` logic, Argo's
branch-phase rule for the DAG's own phase, ``failFast`` and ``target``.

A task becomes ready when its last dependency is decided (ran, was skipped, or omitted):
each decided task decrements the counters of its dependants, so scheduling a whole DAG
costs O(tasks + edges).
"""

from __future__ import annotations

import re
from collections import ChainMap
from functools import partial
from typing import Any

from chute.engine import phases as P
from chute.engine.calls import continues_on, expand, plain_call, should_run
from chute.engine.frame import Frame, Gate
from chute.engine.loops import has_loop
from chute.engine.nodes import Node, node_id
from chute.engine.outputs import compound_outputs
from chute.engine.state import RunState
from chute.engine.vars import group_vars, input_vars, node_vars, substitute
from chute.errors import ChuteError, ExpressionError
from chute.spec import expr

_RESULTS = ("Succeeded", "Failed", "Errored", "Skipped", "Daemoned", "AnySucceeded", "AllFailed")
_TOKEN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]*(?:\.[A-Za-z]+)?")


#: a decided task's branch phases, shared (never changed in place: see decide)
_ONLY = {p: frozenset({p}) for p in (P.SUCCEEDED, P.FAILED, P.ERROR, P.SKIPPED)}


def depends_names(text: str) -> list[str]:
    """Task names a ``depends`` expression refers to, in order of appearance."""
    names: list[str] = []
    for m in _TOKEN.finditer(text):
        name = m.group(0).split(".")[0]
        if name not in names:
            names.append(name)
    return names


def _expand_depends(text: str, tasks: dict[str, dict[str, Any]]) -> str:
    """Argo's expansion: a bare ``A`` means ``(A.Succeeded || A.Skipped || A.Daemoned)``
    (plus ``A.Failed``/``A.Errored`` if A continues on them); ``-`` becomes ``_``."""
    def repl(m: re.Match) -> str:
        token = m.group(0)
        name, _, result = token.partition(".")
        ident = name.replace("-", "_")
        if result:
            return f"{ident}.{result}"
        alts = [f"{ident}.Succeeded", f"{ident}.Skipped", f"{ident}.Daemoned"]
        co = (tasks.get(name) or {}).get("continueOn") or {}
        if co.get("failed"):
            alts.append(f"{ident}.Failed")
        if co.get("error"):
            alts.append(f"{ident}.Errored")
        return "(" + " || ".join(alts) + ")"

    return _TOKEN.sub(repl, text)


def _results(node: Node, children: list[Node]) -> dict[str, bool]:
    any_ok = any(c.phase == P.SUCCEEDED for c in children)
    all_failed = bool(children) and all(c.phase == P.FAILED for c in children)
    return {"Succeeded": node.phase == P.SUCCEEDED, "Failed": node.phase == P.FAILED,
            "Errored": node.phase == P.ERROR, "Skipped": node.phase == P.SKIPPED,
            "Daemoned": False, "AnySucceeded": any_ok, "AllFailed": all_failed}


class DagFrame(Frame):
    """One running DAG template."""

    refs = "tasks"

    def __init__(self, st: RunState, name, display, tmpl, tscope, inputs, boundary_id, parent,
                 owner):
        self.st, self.tmpl, self.tscope = st, tmpl, tscope
        self.node = st.add_node(name, display, P.DAG, template_name=tmpl.get("name"),
                                boundary_id=boundary_id, parent=parent, inputs=inputs,
                                owner=owner)
        st.transition(self.node, P.RUNNING)
        self.local: dict[str, str] = {}
        self.ctx = ChainMap(self.local, input_vars(inputs), st.globals)
        dag = tmpl.get("dag") or {}
        ff = dag.get("failFast")
        self.fail_fast = ff is not False and tmpl.get("failFast") is not False
        self.tasks: dict[str, dict[str, Any]] = {t["name"]: t for t in dag.get("tasks") or []}
        self.gate = Gate(tmpl.get("parallelism"))
        self.deps: dict[str, list[str]] = {}
        self.results: dict[str, Node] = {}
        self.group_children: dict[str, list[Node]] = {}
        self.group_pending: dict[str, int] = {}
        self.group_nodes: dict[str, Node] = {}
        self.child_task: dict[str, str] = {}
        self.branch: dict[str, set[str] | frozenset[str]] = {}
        self.gated: set[str] = set()
        self.call_of: dict[str, dict] = {}
        self.stopped = False
        self.failure: Node | None = None
        # replay of a DAG that ended before a restart: a task it never started stays
        # unstarted, whatever order the replay decides tasks in (R-8: a fail-fast DAG
        # must not start, on replay, a task whose dependencies the replay met first)
        rec = st.recorded.get(self.node.id)
        self.ended_before = rec is not None and P.is_terminal(rec.phase)
        self.cut = False
        try:
            self._plan(dag)
        except ChuteError as exc:
            st.finish(self.node, P.ERROR, str(exc))
            return
        st.run_later(self._start)

    def _plan(self, dag: dict[str, Any]) -> None:
        for tname, task in self.tasks.items():
            if task.get("depends"):
                deps = depends_names(task["depends"])
            else:
                deps = list(dict.fromkeys(task.get("dependencies") or []))
            for d in deps:
                if d not in self.tasks:
                    raise ExpressionError(
                        f"templates.{self.tmpl.get('name')}.tasks.{tname}: "
                        f"depends on unknown task {d!r}")
            self.deps[tname] = deps
        has_dependants = {d for ds in self.deps.values() for d in ds}
        target = substitute(str(dag.get("target") or ""), self.ctx).strip()
        if target:
            targets = target.split()
            for t in targets:
                if t not in self.tasks:
                    raise ExpressionError(f"dag.target: unknown task {t!r}")
            active: set[str] = set()
            stack = list(targets)
            while stack:  # targets and everything they need
                t = stack.pop()
                if t not in active:
                    active.add(t)
                    stack.extend(self.deps[t])
        else:
            targets = sorted(t for t in self.tasks if t not in has_dependants)
            active = set(self.tasks)
        self.targets = targets
        self.active = active
        self.dependants: dict[str, list[str]] = {t: [] for t in active}
        # in spec order, never set order (random per process): a replay in another
        # process must start dependants, and link them as children, in the same order
        for t in (t for t in self.tasks if t in active):
            for d in self.deps[t]:
                self.dependants[d].append(t)
        self.remaining = {t: len(self.deps[t]) for t in active}
        self.undecided = len(active)
        # started before a restart (none on a first run)
        self.to_replay = {t for t in active if self._began(t)} if self.st.recorded else set()

    def _start(self) -> None:
        if self.undecided == 0:
            self.complete()
            return
        # each ready task a callback of its own (in place, in order): a budgeted state
        # creates and launches a wide DAG's roots a slice per turn
        self.st.run_next([partial(self.ready, t) for t in self.tasks
                          if t in self.active and self.remaining[t] == 0])

    # -- a task whose dependencies are all decided -------------------------------------

    def _depends_ok(self, tname: str) -> bool:
        task = self.tasks[tname]
        deps = self.deps[tname]
        if not deps:
            return True
        if task.get("depends"):
            env = {d.replace("-", "_"): _results(self.results[d], self.group_children.get(d, []))
                   for d in deps}
            value = expr.evaluate(_expand_depends(task["depends"], self.tasks), env)
            if not isinstance(value, bool):
                raise ExpressionError(f"depends {task['depends']!r} is not a boolean")
            return value
        for d in deps:
            phase = self.results[d].phase
            if phase in (P.SUCCEEDED, P.SKIPPED) or continues_on(self.tasks[d], phase):
                continue
            return False
        return True

    def _place(self, node: Node, tname: str) -> None:
        """Argo's edges: a root task hangs off the DAG node, others off their dependencies."""
        if self.deps[tname]:
            self.st.unlink(self.node, node.id)
            for d in self.deps[tname]:
                self.st.link(self.results[d], node)

    def _began(self, tname: str) -> bool:
        """Whether the task started before a restart (recorded, past Pending)."""
        if not self.st.recorded:  # a first run: no node id to hash for the question
            return False
        rec = self.st.recorded.get(node_id(self.st.plan.name, f"{self.node.name}.{tname}"))
        return rec is not None and rec.phase != P.PENDING

    def ready(self, tname: str) -> None:
        if self.node.phase in P.TERMINAL:
            return
        st, task = self.st, self.tasks[tname]
        name = f"{self.node.name}.{tname}"
        began = self._began(tname) if st.recorded else False
        if self.to_replay:
            self.to_replay.discard(tname)
        # replay follows history, not the order it decides tasks in now: a task that
        # started before a restart starts again (to re-attach or take its result) even
        # if a failure replayed first stops the DAG; one that never started does not
        if self.stopped and not began:
            return
        if self.ended_before and not began:
            self.cut = True
            st.run_later(self._maybe_complete)  # once what did start has replayed
            return
        try:
            ok = self._depends_ok(tname)
        except ChuteError as exc:
            node = st.error_node(name, tname, task.get("template"), self.node.id, self.node,
                                 self, str(exc))
            self._own(node, tname)
            return
        if not ok:
            node = st.skip_node(name, tname, task, self.tscope, self.node.id, self.node, self,
                                P.OMITTED, "omitted: depends condition not met")
            self.watch(st, node, task)
            self._own(node, tname)
            return
        looped = has_loop(task)
        try:
            # (a plain task, most: its call substituted, without a generator's machinery)
            expanded = list(expand(task, self.ctx)) if looped else plain_call(task, self.ctx)
        except ChuteError as exc:
            self._own(st.error_node(name, tname, task.get("template"), self.node.id, self.node,
                                    self, str(exc)), tname)
            return
        if looped:
            group = st.add_node(name, tname, P.TASK_GROUP, template_name=task.get("template"),
                                boundary_id=self.node.id, parent=self.node, owner=self)
            self._own(group, tname)
            self.group_nodes[tname] = group
            st.transition(group, P.RUNNING)
            self.group_children[tname] = []
            self.group_pending[tname] = len(expanded)
            if not expanded:
                st.finish(group, P.SUCCEEDED)
            st.run_next([partial(self._run_one, name + suffix, tname + suffix, sub, group,
                                 tname, in_group=True) for suffix, sub in expanded])
        else:
            self._run_one(name, tname, expanded, self.node, tname, in_group=False)

    def _own(self, node: Node, tname: str) -> None:
        self.child_task[node.id] = tname
        self._place(node, tname)

    def _register(self, node: Node, tname: str, in_group: bool) -> None:
        """``node`` runs task ``tname`` (or an item of its loop)."""
        self.child_task[node.id] = tname
        if in_group:
            self.group_children[tname].append(node)
        else:
            self._place(node, tname)

    def _run_one(self, name: str, display: str, sub: dict, parent: Node, tname: str,
                 in_group: bool) -> None:
        st = self.st
        try:
            run = sub.get("when") is None or should_run(sub)  # (most tasks have no when)
        except ChuteError as exc:
            self._register(st.error_node(name, display, sub.get("template"), self.node.id,
                                         parent, self, str(exc)), tname, in_group)
            return
        if not run:
            node = st.skip_node(name, display, sub, self.tscope, self.node.id, parent, self,
                                P.SKIPPED, f"when '{sub.get('when')}' evaluated false")
            self.watch(st, node, sub)
            self._register(node, tname, in_group)
            return
        gate = self.gate
        if gate.limit is None:  # Gate.submit, inline (most DAGs): a slot is always free
            gate.active += 1
            self._start_task(name, display, sub, parent, tname, in_group)
        else:
            gate.submit(partial(self._start_task, name, display, sub, parent, tname, in_group))

    def _start_task(self, name: str, display: str, sub: dict, parent: Node, tname: str,
                    in_group: bool) -> None:
        """Run the (substituted) call of a task or loop item, its gate's slot taken."""
        st = self.st
        node = st.execute(name=name, display=display, call=sub, scope=self.tscope,
                          boundary_id=self.node.id, parent=parent, owner=self)
        self.gated.add(node.id)
        self.call_of[node.id] = sub  # called(), inline: watch() only for a call with hooks
        if sub.get("hooks"):
            self.watch(st, node, sub)
        self._register(node, tname, in_group)

    # -- completion ----------------------------------------------------------------------

    def on_child(self, st: RunState, child: Node) -> None:
        if child.id in self.gated:
            self.gated.discard(child.id)
            gate = self.gate
            if gate.waiting:
                gate.release()
            else:  # Gate.release, inline: nothing waits for the slot
                gate.active -= 1
        tname = self.child_task.get(child.id)
        if tname is None or self.node.phase in P.TERMINAL:
            return
        if self.group_pending and tname in self.group_pending and child.type != P.TASK_GROUP:
            self.group_pending[tname] -= 1
            if self.group_pending[tname] == 0:
                kids = self.group_children[tname]
                bad = [k for k in kids if k.phase in P.FAILED_OR_ERROR]
                group = st.nodes[st.nodes[child.id].parent_id] if child.parent_id else None
                if group is not None:
                    st.finish(group, bad[-1].phase if bad else P.SUCCEEDED)
            elif self.stopped and self.gate.active == 0:
                self._maybe_complete()
            return
        self.decide(tname, child)

    def decide(self, tname: str, node: Node) -> None:
        self.results[tname] = node
        prefix = f"tasks.{tname}"
        if node.type == P.TASK_GROUP:
            self.local.update(group_vars(prefix, node, self.group_children.get(tname, [])))
        else:
            node_vars(prefix, node, self.local)
        if node.phase == P.OMITTED:
            inherited: set[str] = set()
            for d in self.deps[tname]:
                inherited |= self.branch.get(d, set())
            self.branch[tname] = inherited or {P.SUCCEEDED}
        else:
            self.branch[tname] = _ONLY.get(node.phase) or {node.phase}
        self.undecided -= 1
        if node.phase in P.FAILED_OR_ERROR and not continues_on(self.tasks[tname], node.phase):
            if self.failure is None:
                self.failure = node
            if self.fail_fast and not self.dependants[tname]:
                self.stopped = True
                self.gate.drop_waiting()
        now_ready = []
        for d in self.dependants[tname]:  # ready() refuses them once stopped, unless replayed
            self.remaining[d] -= 1
            if self.remaining[d] == 0:
                now_ready.append(d)
        if len(now_ready) == 1:  # (run_next, the common case: one task, then the rest)
            front = self.st._front
            front.appendleft(self._maybe_complete)
            front.appendleft(partial(self.ready, now_ready[0]))
        elif now_ready:  # a fan-out: each task a callback, then what followed them here
            self.st.run_next([*(partial(self.ready, d) for d in now_ready),
                              self._maybe_complete])
        else:
            self._maybe_complete()

    def _maybe_complete(self) -> None:
        if self.node.phase in P.TERMINAL:
            return
        if self.undecided == 0 or ((self.stopped or self.cut) and self.gate.active == 0
                                   and not self.to_replay):
            self.complete()

    def complete(self) -> None:
        st = self.st
        phase = P.SUCCEEDED
        failed_task = None
        if self.stopped:
            phase = self.failure.phase if self.failure else P.FAILED
            failed_task = self.failure
        else:
            for t in self.targets:
                for bp in (P.ERROR, P.FAILED):
                    if bp in self.branch.get(t, set()) and not continues_on(self.tasks[t], bp):
                        phase = bp
                        failed_task = self.results.get(t)
                        break
                if phase != P.SUCCEEDED:
                    break
        # groups cut short by fail-fast never finish on their own
        for tname, pending in self.group_pending.items():
            group = self.group_nodes.get(tname)
            if pending > 0 and group is not None and not P.is_terminal(group.phase):
                st.finish(group, P.FAILED, "stopped: the DAG failed fast")
        if phase == P.SUCCEEDED and st.lifecycle.of_node:  # a hook that ended Error fails it
            failed_task = next((e for nid in self.call_of
                                if (e := st.lifecycle.error_of(st.nodes[nid])) is not None),
                               None)
            phase = P.ERROR if failed_task is not None else phase
        if phase != P.SUCCEEDED:
            who = failed_task or self.failure
            st.finish(self.node, phase, f"child '{who.id}' failed" if who else None)
            return
        outputs, error = compound_outputs(self.tmpl, self.ctx)
        if error:
            st.finish(self.node, P.ERROR, error)
            return
        self.node.outputs = outputs
        if outputs:
            st._apply_globals(self.node)
        st.finish(self.node, P.SUCCEEDED)
