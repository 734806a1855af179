"""Channels: the values that flow between tasks while a pipeline is wired.

A channel stands for a value known only when the workflow runs: a task's output
(:class:`TaskOutput`), a pipeline parameter (:class:`PipelineParam`), a loop item
(:class:`LoopItem`), a fan-in of a loop's outputs (:class:`~chute.dsl.control.Collected`),
or a workflow variable (:data:`WORKFLOW_NAME`, :data:`WORKFLOW_STATUS`). Comparing a channel
(``flip.output == "heads"``) builds a :class:`Condition` for ``If``/``Elif``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chute.dsl.errors import PipelineError
from chute.dsl.types import ANY, ArtifactType, ParamType

if TYPE_CHECKING:
    from chute.dsl.component import PipelineTask
    from chute.dsl.context import Scope
    from chute.dsl.control import ParallelFor


class Channel:
    """A value produced at run time. ``type`` is a ParamType or an ArtifactType."""

    type: ParamType | ArtifactType = ANY
    __hash__ = object.__hash__  # comparisons build Conditions, identity stays the hash

    @property
    def is_artifact(self) -> bool:
        return isinstance(self.type, ArtifactType)

    def describe(self) -> str:
        """How error messages name this value: ``Dataset from 'load'``."""
        raise NotImplementedError

    def home(self) -> Scope | None:
        """The DAG scope the value belongs to; None if it is visible everywhere."""
        return None

    def type_name(self) -> str:
        return self.type.cls.__name__ if isinstance(self.type, ArtifactType) else str(self.type)

    # Comparisons build conditions for If/Elif (KFP style: ``If(task.output == 'x')``).
    def __eq__(self, other: object) -> Condition:  # type: ignore[override]
        return Condition(self, "==", other)

    def __ne__(self, other: object) -> Condition:  # type: ignore[override]
        return Condition(self, "!=", other)

    def __lt__(self, other: Any) -> Condition:
        return Condition(self, "<", other)

    def __le__(self, other: Any) -> Condition:
        return Condition(self, "<=", other)

    def __gt__(self, other: Any) -> Condition:
        return Condition(self, ">", other)

    def __ge__(self, other: Any) -> Condition:
        return Condition(self, ">=", other)

    def __bool__(self) -> bool:
        raise PipelineError(
            f"{self.describe()} is only known when the workflow runs; it cannot be used in "
            "a Python `if`, `and`, `or` or `not` (use chute.dsl.If)")

    def __iter__(self):
        raise PipelineError(
            f"{self.describe()} is only known when the workflow runs; iterate over it "
            "with chute.dsl.ParallelFor")


class TaskOutput(Channel):
    """An output parameter or artifact of a task: ``task.outputs['name']``."""

    def __init__(self, task: PipelineTask, name: str, type_: ParamType | ArtifactType):
        self.task = task
        self.name = name
        self.type = type_

    def describe(self) -> str:
        return f"{self.type_name()} from '{self.task.name}'"

    def home(self) -> Scope:
        return self.task.scope

    def __repr__(self) -> str:
        return f"TaskOutput({self.task.name}.{self.name})"


class PipelineParam(Channel):
    """A pipeline parameter: ``{{workflow.parameters.<name>}}``, visible in every scope."""

    def __init__(self, name: str, type_: ParamType):
        self.name = name
        self.type = type_

    def describe(self) -> str:
        return f"{self.type} from pipeline parameter '{self.name}'"

    def __repr__(self) -> str:
        return f"PipelineParam({self.name})"


class WorkflowVariable(Channel):
    """A workflow variable such as ``{{workflow.name}}``; typed str."""

    def __init__(self, expression: str):
        self.expression = expression
        self.type = ParamType("str")

    def describe(self) -> str:
        return f"str from {self.expression}"


WORKFLOW_NAME = WorkflowVariable("workflow.name")
WORKFLOW_UID = WorkflowVariable("workflow.uid")
WORKFLOW_STATUS = WorkflowVariable("workflow.status")  # Running, and the end in an exit handler


class LoopItem(Channel):
    """The item of a ParallelFor (``key`` set for ``item.key`` / ``item['key']``)."""

    def __init__(self, loop: ParallelFor, type_: ParamType, key: str | None = None):
        self.loop = loop
        self.type = type_
        self.key = key

    def describe(self) -> str:
        what = f"item of '{self.loop.name}'" + (f" key {self.key!r}" if self.key else "")
        return f"{self.type} from {what}"

    def home(self) -> Scope:
        return self.loop.body

    def __getitem__(self, key: str) -> LoopItem:
        if self.key is not None:
            raise PipelineError("loop items support one level of keys (item['a'])")
        return LoopItem(self.loop, ANY, key)

    def __getattr__(self, key: str) -> LoopItem:
        if key.startswith("_"):
            raise AttributeError(key)
        return self[key]

    def __repr__(self) -> str:
        return f"LoopItem({self.loop.name}{'.' + self.key if self.key else ''})"


@dataclass(eq=False)
class Condition:
    """``left op right`` where either side is a channel or a constant; compiles to ``when``."""

    left: Any
    op: str
    right: Any

    def channels(self) -> list[Channel]:
        return [v for v in (self.left, self.right) if isinstance(v, Channel)]

    def __bool__(self) -> bool:
        raise PipelineError("a condition on run-time values cannot be used in a Python `if`; "
                            "use `with chute.dsl.If(...)`")
