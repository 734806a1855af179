"""Lifecycle hooks other than ``exit``: ``spec.hooks.<name>`` and a step's or task's
``hooks.<name>``, each with an ``expression`` (Argo's ``executeWfLifeCycleHook`` /
``executeTmplLifeCycleHook``).

A hook's expression is evaluated on every pass of the state machine (Argo: every
reconcile) while the node it is attached to runs, and once more when that node ends (with
its final status, so a ``success`` hook sees ``Succeeded``); the first time it is true the
hook's template runs as node ``<node>.hooks.<name>``, a child of the guarded node, at most
once. The guarded node counts as done (its exit hook runs, its frame goes on) only once
every hook that started has ended. A workflow-level hook sees the globals
(``workflow.status`` is ``Running``, then the entrypoint's end); a step's or task's sees
its frame's scope and ``steps.<name>.*`` / ``tasks.<name>.*`` of the node it guards.

Durability: firing is a node like any other, committed before it acts. A replay fires
again, whatever its expression says now, every hook whose node is in the store (Argo:
``execute || hookedNode != nil``), so it re-attaches to or takes the result of the one
that ran, and never fires a second one; a hook whose node was not committed never fired.

A hook's own end does not change the workflow's phase, except that one that ends
``Error`` (it could not start: bad arguments, unknown template, an expression that is not
a boolean) fails the steps or DAG template of its step or task, as Argo's docs say;
``Failed`` is ignored. A workflow-level hook whose expression cannot be evaluated ends the
workflow in ``Error`` (Argo marks the entrypoint node Error).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chute.engine import phases as P
from chute.engine.frame import hook_applies
from chute.engine.nodes import Node
from chute.errors import ChuteError

if TYPE_CHECKING:
    from chute.engine.frame import Frame
    from chute.engine.plan import TemplateScope
    from chute.engine.state import RunState

EXIT = "exit"


def lifecycle_hooks(call: Mapping[str, Any] | None) -> list[tuple[str, dict[str, Any]]]:
    """The non-exit hooks of a call or of the workflow's spec, by name (sorted: a replay
    fires them in the same order)."""
    hooks = (call or {}).get("hooks") or {}
    return [(name, dict(h)) for name, h in sorted(hooks.items()) if name != EXIT and h]


@dataclass(eq=False)
class Guard:
    """The lifecycle hooks of one node (a step, a task, the workflow's entrypoint)."""

    node: Node
    frame: Frame
    hooks: list[tuple[str, dict[str, Any]]]
    ctx: Callable[[], Mapping[str, str]]  # the expression's variables, read when evaluated
    scope: TemplateScope
    boundary_id: str | None
    fired: dict[str, Node | None] = field(default_factory=dict)  # None: queued, not run
    running: int = 0
    closed: bool = False  # the guarded node ended: no more firing, waits for the hooks
    then: Callable[[], None] | None = None  # what the guarded node's end goes on with
    error: Node | None = None  # the first hook that ended Error
    broken: str | None = None  # an expression that could not be evaluated
    seq: int = 0  # the order guards were created in: the order they are evaluated in

    @property
    def done(self) -> bool:
        """Whether the guarded node ended and every hook that started has ended."""
        return self.closed and self.running == 0


class Lifecycle:
    """The run's open guards, evaluated at the end of every pass.

    Only the guards whose inputs changed are evaluated (else every pass would evaluate
    every open guard: a 10,000-item loop with hooks would be quadratic): a guard whose
    node changed phase (:meth:`RunState.transition` notes it in ``changed``), all of a
    frame's when a step or task of it was decided (its scope grew), all of them when
    ``workflow.status`` or ``workflow.failures`` changed; the workflow's own hooks on
    every pass (one guard; ``workflow.duration`` moves on)."""

    def __init__(self) -> None:
        self.open: dict[str, Guard] = {}  # guarded node id -> its guard, until it ends
        self.of_hook: dict[str, Guard] = {}  # hook node id -> its guard
        self.of_node: dict[str, Guard] = {}  # guarded node id -> its guard
        self.changed: set[str] = set()  # nodes that changed phase since the last poll
        self._frames: dict[Any, list] = {}  # frame -> [scope size seen, {node ids open}]
        self._seen: tuple | None = None  # workflow.status and failures at the last poll
        self._seq = 0
        self._always: set[str] = set()  # the workflow's guard: evaluated on every pass

    def guard(self, st: RunState, frame: Frame, node: Node, call: Mapping[str, Any] | None,
              ctx: Callable[[], Mapping[str, str]], scope: TemplateScope,
              boundary_id: str | None) -> None:
        """Watch the non-exit hooks of ``call`` for ``node`` (none: nothing to watch)."""
        hooks = lifecycle_hooks(call)
        if not hooks or node.id in self.of_node:
            return
        self._seq += 1
        g = Guard(node, frame, hooks, ctx, scope, boundary_id, seq=self._seq)
        self.of_node[node.id] = g
        self.open[node.id] = g
        self.changed.add(node.id)  # evaluated at the next poll
        if boundary_id is None:
            self._always.add(node.id)
        rec = self._frames.setdefault(frame, [len(getattr(frame, "local", ())), set()])
        rec[1].add(node.id)

    def poll(self, st: RunState) -> bool:
        """Evaluate the hooks of the open guards whose inputs changed; queue the firing of
        those now due. Whether anything was queued (the pass goes on with it)."""
        if not self.open:
            self.changed.clear()
            return False
        n = len(st._queue)
        seen = (st.globals.get("workflow.status"), len(st.failed))
        if seen != self._seen:
            self._seen = seen
            due = set(self.open)
        else:
            due = {nid for nid in self.changed if nid in self.open}
            due.update(nid for nid in self._always if nid in self.open)
            for frame, rec in self._frames.items():
                size = len(getattr(frame, "local", ()))
                if size != rec[0]:
                    rec[0] = size
                    due |= rec[1]
        self.changed.clear()
        for g in sorted((self.open[nid] for nid in due), key=lambda g: g.seq):
            self._evaluate(st, g)
        return len(st._queue) > n

    def _evaluate(self, st: RunState, g: Guard) -> None:
        ctx = None
        for name, hook in g.hooks:
            if name in g.fired:
                continue
            hook_name = f"{g.node.name}.hooks.{name}"
            replay = st.started_before(hook_name)
            if st.stopping_hard and not replay:
                continue  # terminate: no new hook starts (as no exit handler does)
            if not replay:
                if ctx is None:
                    ctx = g.ctx()
                try:
                    due = hook_applies(hook, ctx)
                except ChuteError as exc:
                    g.fired[name] = None
                    g.running += 1
                    st.run_later(lambda g=g, name=name, hook=hook, msg=str(exc):
                                 self._broken(st, g, name, hook, msg))
                    continue
                if not due:
                    continue
            g.fired[name] = None
            g.running += 1
            st.run_later(lambda g=g, name=name, hook=hook: self._fire(st, g, name, hook))

    def _fire(self, st: RunState, g: Guard, name: str, hook: dict[str, Any]) -> None:
        from chute.engine.vars import substitute_all

        call = {k: v for k, v in hook.items() if k in ("template", "templateRef", "arguments")}
        call = substitute_all(call, g.ctx())
        node = st.execute(name=f"{g.node.name}.hooks.{name}",
                          display=f"{g.node.display_name}.hooks.{name}", call=call,
                          scope=g.scope, boundary_id=g.boundary_id, parent=g.node,
                          owner=g.frame)
        g.fired[name] = node
        self.of_hook[node.id] = g

    def _broken(self, st: RunState, g: Guard, name: str, hook: dict[str, Any],
                message: str) -> None:
        msg = f"hooks.{name}.expression: {message}"
        g.broken = g.broken or msg
        node = st.error_node(f"{g.node.name}.hooks.{name}",
                             f"{g.node.display_name}.hooks.{name}", hook.get("template"),
                             g.boundary_id, g.node, g.frame, msg)
        g.fired[name] = node
        self.of_hook[node.id] = g

    def node_ended(self, st: RunState, node: Node, then: Callable[[], None]) -> bool:
        """The guarded ``node`` ended: evaluate its hooks a last time (its final status),
        then run ``then`` once every hook that started has ended. False if ``node`` has
        no hooks (the caller goes on at once)."""
        g = self.of_node.get(node.id)
        if g is None:
            return False
        self._evaluate(st, g)
        g.closed, g.then = True, then
        self.open.pop(node.id, None)
        self._frames[g.frame][1].discard(node.id)
        if not self._frames[g.frame][1]:
            del self._frames[g.frame]
        if g.running == 0:
            st.run_later(then)
        return True

    def hook_ended(self, st: RunState, hook_node: Node) -> Guard | None:
        """A hook's node ended: its guard (None if ``hook_node`` is no hook); the guarded
        node's end goes on if this was the last hook it waited for."""
        g = self.of_hook.pop(hook_node.id, None)
        if g is None:
            return None
        g.running -= 1
        if hook_node.phase == P.ERROR and g.error is None:
            g.error = hook_node
        if g.done and g.then is not None:
            then, g.then = g.then, None
            then()
        return g

    def error_of(self, node: Node) -> Node | None:
        """The first hook of ``node`` that ended Error, if any."""
        g = self.of_node.get(node.id)
        return g.error if g is not None else None

    def broken_of(self, node: Node) -> str | None:
        """Why a hook expression of ``node`` could not be evaluated, if one could not."""
        g = self.of_node.get(node.id)
        return g.broken if g is not None else None
