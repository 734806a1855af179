"""Control flow: ``If``/``Elif``/``Else``, ``ParallelFor``, ``Collected``, ``ExitHandler``.

How each maps onto Argo:

* ``with If(cond):`` -- every task and loop created inside gets ``when: <cond>``; ``Elif``
  adds ``!(earlier) && (cond)``, ``Else`` adds ``!(earlier)``. Conditions compare a task
  output, pipeline parameter or loop item with a constant or another channel.
* ``with ParallelFor(items, parallelism=N) as item:`` -- the body becomes its own DAG
  template, run once per item by a task with ``withItems`` (a static list) or
  ``withParam`` (a list produced by a task, or a list pipeline parameter). With
  ``parallelism`` the looping task sits in a small wrapper DAG whose ``parallelism`` caps
  how many iterations run at once.
* ``Collected(task.output)`` after a loop -- the list of that output from every iteration
  (Argo's aggregated loop outputs), passed to the consumer as a JSON list.
* ``with ExitHandler(exit_task):`` -- ``exit_task`` (created just before, at the top level)
  becomes the workflow's ``onExit``: it runs when the workflow ends, whatever the outcome.
  ``WORKFLOW_STATUS`` gives it ``Succeeded``/``Failed``/``Error``.
"""

from __future__ import annotations

from typing import Any, Self

from chute.dsl.channels import Channel, Condition, LoopItem
from chute.dsl.component import PipelineTask, check_visible
from chute.dsl.context import Block, Guard, Scope, current_builder
from chute.dsl.errors import PipelineError, user_location
from chute.dsl.types import ANY, ParamType, constant_type


def _as_condition(cond: Any, what: str) -> Condition:
    if isinstance(cond, Condition):
        return cond
    if isinstance(cond, Channel) and not cond.is_artifact:
        return Condition(cond, "==", True)
    raise PipelineError(f"{what}() takes a comparison such as task.output == 'heads' or a "
                        f"bool output, got {cond!r}")


class If:
    """``with If(task.output == 'heads'):`` -- the tasks inside run only when it holds."""

    kind = "if"

    def __init__(self, condition: Any):
        self.builder = current_builder(type(self).__name__)
        self.location = user_location()
        self.condition = _as_condition(condition, type(self).__name__)
        self.chain: tuple[Condition, ...] = (self.condition,)
        self.guards: tuple[Guard, ...] = (Guard(self.condition, True),)
        self._ctx: Any = None

    def __enter__(self) -> Self:
        self._ctx = self.builder.open(Block(self.kind, self.guards, chain=self.chain))
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)


class Elif(If):
    """``with Elif(cond):`` right after an If/Elif block: runs when none before held."""

    kind = "elif"

    def __init__(self, condition: Any):
        super().__init__(condition)
        earlier = self._previous_chain()
        self.chain = earlier + (self.condition,)
        self.guards = tuple(Guard(c, False) for c in earlier) + (Guard(self.condition, True),)

    def _previous_chain(self) -> tuple[Condition, ...]:
        last = self.builder.last_chain
        if last is None or last[0] is not self.builder.scope:
            raise PipelineError(f"{type(self).__name__} must directly follow an If or Elif "
                                "block", self.location)
        return last[1].chain


class Else(Elif):
    """``with Else():`` right after an If/Elif block: runs when none of them held."""

    kind = "else"

    def __init__(self) -> None:
        self.builder = current_builder("Else")
        self.location = user_location()
        earlier = self._previous_chain()
        self.chain = earlier
        self.guards = tuple(Guard(c, False) for c in earlier)
        self._ctx = None


class ParallelFor:
    """``with ParallelFor(items, parallelism=N) as item:`` -- run the body once per item."""

    def __init__(self, items: Any, parallelism: int | None = None):
        builder = current_builder("ParallelFor")
        self.builder = builder
        self.location = user_location()
        self.name = builder.unique_name("for-loop")
        self.scope: Scope = builder.scope
        self.guards, self.cond_blocks = builder.guards()
        self.body = Scope(self.name, parent=self.scope, loop=self)
        self.after_tasks: list[tuple[Any, str]] = []
        if parallelism is not None and (not isinstance(parallelism, int) or parallelism < 1):
            raise PipelineError(f"ParallelFor: parallelism must be a positive int, got "
                                f"{parallelism!r}", self.location)
        self.parallelism = parallelism
        self.items, item_type = self._check_items(items)
        self.item = LoopItem(self, item_type)
        for guard in self.guards:
            for ch in guard.condition.channels():
                check_visible(ch, self, "its condition uses")
        builder.loops.append(self)
        builder.add_node(self)
        self._ctx: Any = None

    def _check_items(self, items: Any) -> tuple[Any, ParamType]:
        if isinstance(items, Channel):
            if items.is_artifact or items.type.kind not in ("list", "any"):  # type: ignore
                raise PipelineError(f"ParallelFor: items must be a list, got "
                                    f"{items.describe()}", self.location)
            check_visible(items, self, "its items use")
            items_of = items.type.items  # type: ignore[union-attr]
            return items, ParamType(items_of) if items_of else ANY
        if isinstance(items, PipelineTask):
            raise PipelineError("ParallelFor: pass the task's output (task.output), not the "
                                "task", self.location)
        if not isinstance(items, (list, tuple)) or not items:
            raise PipelineError(f"ParallelFor: items must be a non-empty list or a task "
                                f"output, got {items!r:.60}", self.location)
        kinds = set()
        for item in items:
            ct = constant_type(item)
            if ct is None or ct.kind == "list":
                raise PipelineError("ParallelFor: static items must be str, int, float, bool "
                                    f"or dict, got {item!r:.60}", self.location)
            kinds.add(ct.kind)
        kind = kinds.pop() if len(kinds) == 1 else "any"
        return list(items), ParamType(kind)

    def __enter__(self) -> LoopItem:
        self._ctx = self.builder.open(Block("loop", loop=self))
        self._ctx.__enter__()
        return self.item

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)
        if exc[0] is None and not self.body.nodes:
            raise PipelineError(f"ParallelFor '{self.name}' has no tasks in its body",
                                self.location)

    def __repr__(self) -> str:
        return f"<ParallelFor {self.name}>"


class Collected(Channel):
    """``Collected(task.output)``: every iteration's value of a loop task's output, as a list."""

    def __init__(self, channel: Any):
        if not isinstance(channel, Channel) or channel.is_artifact:
            raise PipelineError("Collected() takes an output parameter of a task inside a "
                                f"ParallelFor, got {channel!r}")
        self.channel = channel
        self.type = ParamType("list", items=channel.type.kind)  # type: ignore[union-attr]

    def describe(self) -> str:
        return f"{self.type} from Collected({self.channel.describe()})"

    def home(self) -> Scope | None:
        scope = self.channel.home()
        return scope.parent if scope is not None else None


class ExitHandler:
    """``with ExitHandler(exit_task):`` -- ``exit_task`` runs when the workflow ends."""

    def __init__(self, exit_task: PipelineTask):
        builder = current_builder("ExitHandler")
        location = user_location()
        if not isinstance(exit_task, PipelineTask):
            raise PipelineError(f"ExitHandler() takes a task, got {exit_task!r}", location)
        if builder.blocks or exit_task.scope is not builder.root or exit_task.guards:
            raise PipelineError("ExitHandler can only be used at the top level of a pipeline "
                                "(not inside If or ParallelFor)", location)
        if builder.exit_task is not None:
            raise PipelineError("a pipeline can have only one ExitHandler", location)
        if exit_task.after_tasks:
            raise PipelineError(f"the exit task '{exit_task.name}' cannot have .after()",
                                location)
        for name, value in exit_task.arguments.items():
            if isinstance(value, Channel) and value.home() is not None:
                raise PipelineError(f"the exit task '{exit_task.name}': argument {name!r} uses "
                                    f"{value.describe()}; an exit handler can only use "
                                    "constants, pipeline parameters and workflow variables",
                                    location)
        builder.exit_task = exit_task
        builder.exit_location = location
        self.builder = builder
        self.exit_task = exit_task
        self._ctx: Any = None

    def __enter__(self) -> Self:
        self._ctx = self.builder.open(Block("exit"))
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)
