"""Frames: what waits for child nodes (a DAG, a steps template, a retry, the root), the
``parallelism`` gate they share, and step/task exit handlers."""

from __future__ import annotations

import functools
import re
from collections import ChainMap, deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from chute.engine import phases as P
from chute.engine.nodes import Node
from chute.errors import ChuteError, ExpressionError

if TYPE_CHECKING:
    from chute.engine.state import RunState


def exit_hook(call: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The exit handler of a step, a task or the workflow (its spec): ``onExit`` or
    ``hooks.exit``, as a call."""
    if not call:
        return None
    if call.get("onExit"):
        return {"template": call["onExit"]}
    hook = (call.get("hooks") or {}).get("exit")
    return dict(hook) if hook else None


def hook_applies(hook: Mapping[str, Any], ctx: Mapping[str, str]) -> bool:
    """Whether an exit hook runs: always, unless its ``expression`` (evaluated over the
    hook's variables, as Argo's ``runOnExitNode`` does) is false."""
    source = hook.get("expression")
    if not source:
        return True
    from chute.spec import expr

    names = _roots(str(source))
    # only the variables the expression can name: building the environment of every
    # global (and every step's outputs) is most of the cost, paid for each guarded node
    value = expr.evaluate(str(source), {k: v for k, v in ctx.items()
                                        if k.partition(".")[0] in names})
    if not isinstance(value, bool):
        raise ExpressionError(f"{source!r} is not a boolean")
    return value


@functools.lru_cache(maxsize=256)
def _roots(source: str) -> frozenset[str]:
    """The identifiers in an expression: the first parts of the variables it can name."""
    return frozenset(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", source))


def with_workflow_arguments(hook: dict[str, Any], st: RunState) -> dict[str, Any]:
    """An exit hook without arguments (``onExit`` never has any) gets the workflow's, as
    Argo's ``GetExitHook(spec.arguments)`` / ``LifecycleHook.WithArgs`` give it."""
    args = hook.get("arguments") or {}
    if args.get("parameters") or args.get("artifacts"):
        return hook
    params = [{"name": k, "value": v} for k, v in st.plan.parameters.items()]
    wf_arts = (st.plan.spec.get("arguments") or {}).get("artifacts")
    return {**hook, "arguments": {"parameters": params,
                                  **({"artifacts": wf_arts} if wf_arts else {})}}


class Frame:
    """Something that waits for child nodes: a DAG, a steps template, a retry, the root.

    Frames that run steps or tasks record each child's call in ``call_of``; a child whose
    call has an exit handler (``onExit`` / ``hooks.exit``) counts as done only once its
    handler (node ``<child>.onExit``) has run, as in Argo."""

    node: Node

    def called(self, st: RunState, node: Node, call: dict[str, Any]) -> None:
        """``node`` runs ``call`` (a step or a task): remember the call (its exit hook)
        and watch its lifecycle hooks (:mod:`chute.engine.hooks`)."""
        self.call_of[node.id] = call  # type: ignore[attr-defined] - frames that run calls
        self.watch(st, node, call)

    def watch(self, st: RunState, node: Node, call: dict[str, Any]) -> None:
        """Watch the lifecycle hooks of ``call`` for ``node``: one that ran, or one
        skipped or omitted (Argo evaluates the hooks of every child node it has)."""
        if call.get("hooks"):
            st.lifecycle.guard(st, self, node, call,
                               lambda: self.hook_vars(st, call, node),
                               self.tscope, self.node.id)  # type: ignore[attr-defined]

    def child_done(self, st: RunState, child: Node) -> None:
        exits: dict[str, Node] | None = self.__dict__.get("_exit_for")
        if exits and child.id in exits:  # the exit handler of a step finished: done
            self.on_child(st, exits.pop(child.id))
            return
        lc = st.lifecycle
        if lc.of_hook and lc.hook_ended(st, child) is not None:
            return  # a lifecycle hook ended: its step goes on once all its hooks did
        # the step's lifecycle hooks first (a last look at its final status), then its
        # exit hook, as Argo runs a step's exit hook once its hooks are done
        if child.id in lc.of_node:
            lc.node_ended(st, child, lambda: self.after_hooks(st, child))
            return
        # (most children: no lifecycle hook, no exit hook; after_hooks, inline)
        call = self.__dict__.get("call_of")
        call = call.get(child.id) if call else None
        if call is None or not (call.get("onExit") or call.get("hooks")):
            self.on_child(st, child)
            return
        self.after_hooks(st, child)

    def after_hooks(self, st: RunState, child: Node) -> None:
        """``child`` and its lifecycle hooks ended: run its exit hook, if any, else
        hand it to the frame."""
        exits: dict[str, Node] = self.__dict__.setdefault("_exit_for", {})
        call = getattr(self, "call_of", {}).get(child.id)
        hook = exit_hook(call)
        # terminate skips exit handlers, except one that started before a restart: it is
        # re-attached, so its (cancelled) end is collected and it is not left Running
        if hook and child.phase in (P.SUCCEEDED, P.FAILED, P.ERROR) and (
                not st.stopping_hard or st.started_before(f"{child.name}.onExit")):
            from chute.engine.vars import substitute_all

            ctx = self.hook_vars(st, call, child)
            name, display = f"{child.name}.onExit", f"{child.display_name}.onExit"
            try:
                run = hook_applies(hook, ctx)
            except ChuteError as exc:
                handler = st.error_node(name, display, hook.get("template"), self.node.id,
                                        child, self, f"hooks.exit.expression: {exc}")
                exits[handler.id] = child
                return
            if run:
                handler = st.execute(name=name, display=display,
                                     call=substitute_all(with_workflow_arguments(hook, st), ctx),
                                     scope=self.tscope, boundary_id=self.node.id, parent=child,
                                     owner=self)
                exits[handler.id] = child
                return
        self.on_child(st, child)

    #: how this frame's children are referred to: ``steps`` or ``tasks`` (None: no calls)
    refs: str | None = None

    def hook_vars(self, st: RunState, call: Mapping[str, Any], child: Node) -> Mapping[str, str]:
        """What the exit hook of ``child`` (its ``arguments``) sees: the frame's scope (the
        globals, the template's inputs, the steps or tasks decided before) and the step
        or task it guards, ``steps.<name>.*`` / ``tasks.<name>.*`` (status, id, exit code,
        outputs; of the last attempt for a retried one), as Argo resolves hook arguments
        (``resolveExitTmplArgument`` with the node's status in scope). A looped step's
        hook runs per item and sees that item's node."""
        from chute.engine.vars import node_vars

        scope = getattr(self, "ctx", st.globals)
        if not self.refs or not call.get("name"):
            return scope
        return ChainMap(node_vars(f"{self.refs}.{call['name']}", child), scope)

    def on_child(self, st: RunState, child: Node) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class Gate:
    """A template's ``parallelism``: at most ``limit`` children active at once."""

    def __init__(self, limit: int | None):
        self.limit = limit if limit and limit > 0 else None
        self.active = 0
        self.waiting: deque[Callable[[], None]] = deque()

    def submit(self, start: Callable[[], None]) -> None:
        """Run ``start`` now if a slot is free, else when one frees up."""
        if self.limit is None or self.active < self.limit:
            self.active += 1
            start()
        else:
            self.waiting.append(start)

    def release(self) -> None:
        """A child finished: start the next waiting one."""
        self.active -= 1
        while self.waiting and (self.limit is None or self.active < self.limit):
            self.active += 1
            self.waiting.popleft()()

    def drop_waiting(self) -> int:
        """Forget children that never started (fail-fast); how many there were."""
        n = len(self.waiting)
        self.waiting.clear()
        return n


def template_kind(tmpl: Mapping[str, Any]) -> str | None:
    """Which kind a template dict is (container, script, dag, steps, suspend, ...)."""
    for k in ("container", "script", "dag", "steps", "suspend", "resource", "http",
              "containerSet", "data", "plugin"):
        if tmpl.get(k) is not None:
            return k
    return None
