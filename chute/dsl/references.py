"""How a channel is written inside a DAG template: the Argo tag reading a pipeline
parameter, a workflow variable, a task's output, a loop item or a ``Collected()`` list, and
the ``when`` expressions made of conditions on them.

A channel from outside a loop is not in scope in the loop body's template: it reaches it
as an input of that template, named here and noted in ``passed`` (the loop's items in
``item_inputs``; the outputs ``Collected()`` asks of a loop in ``exports``), which the
compiler (:mod:`chute.dsl.compiler`) then declares on the loop's templates. Apart from
the compiler because this is where a value's way across scopes is decided, while the
compiler lays out the templates.
"""

from __future__ import annotations

from typing import Any

from chute.dsl.channels import (
    Channel,
    Condition,
    LoopItem,
    PipelineParam,
    TaskOutput,
    WorkflowVariable,
)
from chute.dsl.context import Guard, Scope
from chute.dsl.control import Collected, ParallelFor
from chute.dsl.errors import PipelineError
from chute.dsl.types import encode_constant


class ChannelReferences:
    """The reference side of the compiler's ``_Compiler`` (a mixin over its ``b``, the
    wired pipeline, and the ``passed``, ``item_inputs`` and ``exports`` it fills)."""

    def ref(self, ch: Channel, scope: Scope) -> str:
        """The Argo expression for ``ch`` inside the DAG template of ``scope``."""
        kind = "artifacts" if ch.is_artifact else "parameters"
        if isinstance(ch, PipelineParam):
            return tag(f"workflow.parameters.{ch.name}")
        if isinstance(ch, WorkflowVariable):
            return tag(ch.expression)
        if isinstance(ch, Collected):
            loop = ch.channel.home().loop
            if loop.scope is scope:
                name = self._export(loop, ch.channel)
                return tag(f"tasks.{loop.name}.outputs.parameters.{name}")
        elif isinstance(ch, TaskOutput):
            if self.b.exit_task is ch.task:
                raise PipelineError(f"the output of the exit task '{ch.task.name}' cannot be "
                                    "used by other tasks", ch.task.location)
            if ch.task.scope is scope:
                return tag(f"tasks.{ch.task.name}.outputs.{kind}.{ch.name}")
        elif isinstance(ch, LoopItem) and ch.loop.body is scope:
            name = _input_name(ch)
            self.item_inputs.setdefault(id(ch.loop), {})[name] = ch.key
            return tag(f"inputs.parameters.{name}")
        if scope.parent is None:
            raise AssertionError(f"unresolvable channel {ch!r}")  # checked at wiring time
        name = _input_name(ch)
        self.passed.setdefault(id(scope), {})[name] = ch
        return tag(f"inputs.{kind}.{name}")

    def _export(self, loop: ParallelFor, ch: Channel) -> str:
        if not (isinstance(ch, TaskOutput) and ch.task.scope is loop.body):
            raise PipelineError(f"Collected({ch.describe()}): the task must be directly in "
                                f"the body of '{loop.name}' (not in a nested loop)")
        name = f"{ch.task.name}-{ch.name}"
        self.exports.setdefault(id(loop), {})[name] = ch
        return name

    def operand(self, value: Any, scope: Scope, quoted: bool) -> str:
        """One side of a condition: a channel's reference or a constant's text."""
        if isinstance(value, Channel):
            text = self.ref(value, scope)
        else:
            text = encode_constant(value)
            if quoted and "'" in text:
                raise PipelineError(f"a condition constant cannot contain a quote: {value!r}")
        return f"'{text}'" if quoted else text

    def condition(self, cond: Condition, scope: Scope) -> str:
        """A ``when`` comparison; quoted (string) unless a side is a number."""
        numeric = any(
            (isinstance(v, Channel) and getattr(v.type, "kind", "") in ("int", "float"))
            or (isinstance(v, (int, float)) and not isinstance(v, bool))
            for v in (cond.left, cond.right))
        return (f"{self.operand(cond.left, scope, not numeric)} {cond.op} "
                f"{self.operand(cond.right, scope, not numeric)}")

    def when(self, guards: tuple[Guard, ...], scope: Scope) -> str | None:
        """The ``when`` of a task under ``guards`` (its ``If``/``Elif``/``Else``), or None."""
        if not guards:
            return None
        parts = [(self.condition(g.condition, scope), g.positive) for g in guards]
        if len(parts) == 1 and parts[0][1]:
            return parts[0][0]
        return " && ".join(f"({t})" if pos else f"!({t})" for t, pos in parts)


def tag(expression: str) -> str:
    """An Argo template tag: ``{{expression}}``."""
    return "{{" + expression + "}}"


def _input_name(ch: Channel) -> str:
    if isinstance(ch, LoopItem):
        return f"{ch.loop.name}-item" + (f"-{ch.key}" if ch.key else "")
    if isinstance(ch, Collected):
        inner = ch.channel
        return f"collected-{inner.task.name}-{inner.name}"  # type: ignore[attr-defined]
    if isinstance(ch, TaskOutput):
        return f"{ch.task.name}-{ch.name}"
    raise AssertionError(f"channel {ch!r} is never passed down")
