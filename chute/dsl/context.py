"""The wiring context: which pipeline is being built, and where in it the code is.

While a ``@pipeline`` function runs, a :class:`Builder` sits in a ``ContextVar`` (as hera
does), so calling a component adds a task to it and ``with If(...)`` / ``with
ParallelFor(...)`` open blocks on its stack. Outside a pipeline there is no builder, and
calling a component is a clear error. ContextVars keep concurrent compilations (threads,
async tests) apart.

A :class:`Scope` is one DAG template: the pipeline's root DAG, or the body of a
ParallelFor. Conditions do not open scopes: tasks under ``If`` get a ``when``.
"""

from __future__ import annotations

import contextlib
import re
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chute.dsl.errors import PipelineError

if TYPE_CHECKING:
    from chute.dsl.channels import Condition
    from chute.dsl.component import PipelineTask
    from chute.dsl.control import ParallelFor

_current: ContextVar[Builder | None] = ContextVar("chute_dsl_builder", default=None)


@dataclass(frozen=True)
class Guard:
    """One clause of a task's ``when``: ``condition`` must hold (or must not)."""

    condition: Condition
    positive: bool


@dataclass(eq=False)
class Block:
    """An open ``with`` block: a condition branch, a loop or the exit handler."""

    kind: str  # "if", "elif", "else", "loop", "exit"
    guards: tuple[Guard, ...] = ()
    loop: ParallelFor | None = None
    chain: tuple[Condition, ...] = ()  # conditions of this If/Elif chain so far


@dataclass(eq=False)
class Scope:
    """One DAG template: the root, or a loop body. ``nodes`` are its tasks and loops."""

    name: str
    parent: Scope | None = None
    loop: ParallelFor | None = None
    nodes: list[Any] = field(default_factory=list)

    def within(self, other: Scope) -> bool:
        """True if this scope is ``other`` or nested inside it."""
        scope: Scope | None = self
        while scope is not None:
            if scope is other:
                return True
            scope = scope.parent
        return False


_NAME_RX = re.compile(r"[^a-z0-9-]+")


def dns_name(text: str) -> str:
    """A Python name as an Argo/Kubernetes name: lower case, ``_`` to ``-``."""
    name = _NAME_RX.sub("-", text.lower().replace("_", "-")).strip("-")
    return name or "task"


class Builder:
    """The pipeline under construction: scopes, open blocks, unique names."""

    def __init__(self, pipeline_name: str):
        self.pipeline_name = pipeline_name
        self.root = Scope(pipeline_name)
        self.blocks: list[Block] = []
        self.tasks: list[PipelineTask] = []
        self.loops: list[ParallelFor] = []
        self._names: set[str] = set()
        self._next: dict[str, int] = {}
        self.exit_task: PipelineTask | None = None
        self.exit_location: str | None = None
        # The If/Elif chain that just closed in a scope, for a following Elif/Else.
        self.last_chain: tuple[Scope, Block] | None = None

    def unique_name(self, base: str) -> str:
        """``base``, or ``base-2``, ``base-3``... unique among tasks and loops."""
        name, n = base, self._next.get(base, 1)
        if name in self._names:  # resume numbering where this base left off: O(1) each
            while name in self._names:
                n += 1
                name = f"{base}-{n}"
        self._next[base] = n
        self._names.add(name)
        return name

    @property
    def scope(self) -> Scope:
        """The DAG scope new tasks go into: the innermost open loop's body, or the root."""
        for block in reversed(self.blocks):
            if block.kind == "loop":
                return block.loop.body  # type: ignore[union-attr]
        return self.root

    def guards(self) -> tuple[tuple[Guard, ...], tuple[Block, ...]]:
        """Guards and condition blocks open inside the current scope (innermost loop)."""
        guards: list[Guard] = []
        blocks: list[Block] = []
        for block in reversed(self.blocks):
            if block.kind == "loop":
                break
            if block.guards:
                guards[:0] = block.guards
                blocks.insert(0, block)
        return tuple(guards), tuple(blocks)

    def add_node(self, node: Any) -> None:
        """Put a task or loop into the current scope; a later Elif/Else can no longer chain."""
        self.scope.nodes.append(node)
        self.last_chain = None

    @contextlib.contextmanager
    def open(self, block: Block):
        """Push a block for the duration of a ``with``."""
        self.last_chain = None
        self.blocks.append(block)
        try:
            yield block
        finally:
            popped = self.blocks.pop()
            assert popped is block, "with-blocks closed out of order"
            if block.kind in ("if", "elif"):
                self.last_chain = (self.scope, block)
            else:
                self.last_chain = None


def current_builder(what: str) -> Builder:
    """The active builder, or a clear error saying ``what`` needs a pipeline."""
    builder = _current.get()
    if builder is None:
        raise PipelineError(f"{what} can only be used inside a @pipeline function "
                            "(compile the pipeline with chute.dsl.compile_pipeline)")
    return builder


@contextlib.contextmanager
def building(builder: Builder):
    """Make ``builder`` the active one while a pipeline function runs."""
    token = _current.set(builder)
    try:
        yield builder
    finally:
        _current.reset(token)
