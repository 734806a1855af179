"""Argo's enhanced ``depends`` logic for DAG tasks (docs/enhanced-depends-logic.md).

Grammar: operands ``task`` or ``task.Result``, ``!``, ``&&``, ``||`` and parentheses, with
``!`` binding tightest and ``&&`` tighter than ``||`` (Argo evaluates the expression with
expr-lang after replacing ``-`` by ``_`` in task names). Task names are letters, digits,
``-`` and ``_``. Results:

=================  ================================================================
``.Succeeded``     the task's node Succeeded
``.Failed``        the node Failed (non-zero exit)
``.Errored``       the node is in Error (anything other than a non-zero exit)
``.Skipped``       the task's ``when`` was false (node phase Skipped)
``.Omitted``       the task's own ``depends`` was false (node phase Omitted)
``.Daemoned``      the task is a daemon and is not Pending
``.AnySucceeded``  a ``withItems``/``withParam``/``withSequence`` group with any child Succeeded
``.AllFailed``     such a group with at least one child, every child Failed
=================  ================================================================

A bare ``task`` means ``(task.Succeeded || task.Skipped || task.Daemoned)``, extended with
``|| task.Errored`` / ``|| task.Failed`` when *that* task has ``continueOn.error`` /
``continueOn.failed`` (``workflow/common/ancestry.go``). The legacy ``dependencies: [A, B]``
is ``A && B`` (:func:`from_dependencies`).

What the engine must do (``workflow/controller/dag.go``):

* evaluate a task's ``depends`` only when *every* task it names is fulfilled (terminal, or a
  daemon that is running); until then the task waits (:func:`pending` lists who it waits for);
* if the expression is true, the task runs; its ``when`` is then checked, and a false
  ``when`` marks the task **Skipped**;
* if the expression is false, the task does not run and is marked **Omitted**; an
  Omitted task does not fail the DAG, and tasks depending on it see ``.Omitted``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from chute.errors import ExpressionError

RESULTS = ("Succeeded", "Failed", "Errored", "Skipped", "Omitted", "Daemoned", "AnySucceeded", "AllFailed")
FULFILLED_PHASES = frozenset({"Succeeded", "Failed", "Error", "Skipped", "Omitted"})
MAX_LENGTH = 4096
MAX_DEPTH = 64


@dataclass(frozen=True)
class Ref:
    """``task.Result``, or a bare ``task`` when result is None."""

    task: str
    result: str | None
    pos: int


@dataclass(frozen=True)
class Not:
    operand: DependsExpr


@dataclass(frozen=True)
class And:
    """All operands hold (n-ary, so long chains do not nest deeply)."""

    items: tuple[DependsExpr, ...]


@dataclass(frozen=True)
class Or:
    """Any operand holds."""

    items: tuple[DependsExpr, ...]


DependsExpr = Ref | Not | And | Or


@dataclass(frozen=True)
class TaskResult:
    """What a finished dependency looks like to ``depends``.

    ``phase`` is the node phase (Succeeded, Failed, Error, Skipped, Omitted, or Running /
    Pending for a daemon or an unfinished task); ``daemoned`` says the node is a daemon;
    ``children`` holds the phases of a loop group's children (None when the task is not a
    ``withItems``/``withParam``/``withSequence`` group).
    """

    phase: str
    daemoned: bool = False
    children: tuple[str, ...] | None = None

    @property
    def fulfilled(self) -> bool:
        """Done as far as dependants are concerned (Argo's NodeStatus.Fulfilled)."""
        return self.phase in FULFILLED_PHASES or (self.daemoned and self.phase != "Pending")

    def has(self, result: str) -> bool:
        """Whether this task satisfies ``task.<result>``."""
        if result == "Succeeded":
            return self.phase == "Succeeded"
        if result == "Failed":
            return self.phase == "Failed"
        if result == "Errored":
            return self.phase == "Error"
        if result == "Skipped":
            return self.phase == "Skipped"
        if result == "Omitted":
            return self.phase == "Omitted"
        if result == "Daemoned":
            return self.daemoned and self.phase != "Pending"
        if result == "AnySucceeded":
            return self.children is not None and any(p == "Succeeded" for p in self.children)
        if result == "AllFailed":
            return bool(self.children) and all(p == "Failed" for p in self.children)
        raise ExpressionError(f"unknown task result '{result}'")


@dataclass(frozen=True)
class ContinueOn:
    """The ``continueOn`` of a dependency task, which widens what a bare reference accepts."""

    failed: bool = False
    error: bool = False


@dataclass
class _Parser:
    text: str
    i: int = 0
    depth: int = 0
    refs: list[Ref] = field(default_factory=list)

    def error(self, msg: str, pos: int | None = None) -> ExpressionError:
        at = self.i if pos is None else pos
        return ExpressionError(f"invalid depends '{self.text}': {msg} at offset {at}")

    def skip(self) -> None:
        while self.i < len(self.text) and self.text[self.i].isspace():
            self.i += 1

    def peek(self, s: str) -> bool:
        self.skip()
        return self.text.startswith(s, self.i)

    def parse(self) -> DependsExpr:
        if not self.text.strip():
            raise self.error("empty expression", 0)
        node = self.or_()
        self.skip()
        if self.i < len(self.text):
            raise self.error(f"unexpected {self.text[self.i]!r}")
        return node

    def or_(self) -> DependsExpr:
        items = [self.and_()]
        while self.peek("||"):
            self.i += 2
            items.append(self.and_())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_(self) -> DependsExpr:
        items = [self.unary()]
        while self.peek("&&"):
            self.i += 2
            items.append(self.unary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def unary(self) -> DependsExpr:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"nested deeper than {MAX_DEPTH} levels")
        try:
            self.skip()
            if self.peek("!"):
                self.i += 1
                return Not(self.unary())
            if self.peek("("):
                self.i += 1
                node = self.or_()
                if not self.peek(")"):
                    raise self.error("expected ')'")
                self.i += 1
                return node
            return self.ref()
        finally:
            self.depth -= 1

    def ref(self) -> Ref:
        self.skip()
        start = self.i
        t = self.text
        if self.i >= len(t):
            raise self.error("expected a task name")
        if not (t[self.i].isascii() and (t[self.i].isalnum() or t[self.i] == "_")):
            raise self.error(f"expected a task name, got {t[self.i]!r}")
        while self.i < len(t) and t[self.i].isascii() and (t[self.i].isalnum() or t[self.i] in "-_"):
            self.i += 1
        name = t[start:self.i]
        result = None
        if self.i < len(t) and t[self.i] == ".":
            self.i += 1
            rstart = self.i
            while self.i < len(t) and t[self.i].isascii() and t[self.i].isalpha():
                self.i += 1
            result = t[rstart:self.i]
            if result not in RESULTS:
                raise self.error(f"task result '{result}' for task '{name}' is invalid "
                                 f"(expected one of {', '.join(RESULTS)})", rstart)
        ref = Ref(name, result, start)
        self.refs.append(ref)
        return ref


def parse(text: str) -> DependsExpr:
    """Parse a ``depends`` expression, raising ExpressionError naming the offset."""
    if not isinstance(text, str):
        raise ExpressionError("depends must be a string")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"depends longer than {MAX_LENGTH} characters")
    return _Parser(text).parse()


def from_dependencies(names: Iterable[str]) -> DependsExpr:
    """The ``depends`` equivalent of the legacy ``dependencies: [A, B]`` (``A && B``)."""
    refs: tuple[DependsExpr, ...] = tuple(Ref(n, None, 0) for n in names)
    if not refs:
        raise ExpressionError("dependencies is empty")
    return refs[0] if len(refs) == 1 else And(refs)


def _walk(expr: DependsExpr) -> Iterable[Ref]:
    stack: list[DependsExpr] = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, Ref):
            yield node
        elif isinstance(node, Not):
            stack.append(node.operand)
        else:
            stack.extend(reversed(node.items))


def tasks_of(expr: DependsExpr) -> set[str]:
    """The task names an expression refers to."""
    return {r.task for r in _walk(expr)}


def pending(expr: DependsExpr, results: Mapping[str, TaskResult]) -> set[str]:
    """Tasks the expression names that are not fulfilled yet; evaluate only when empty."""
    return {t for t in tasks_of(expr) if t not in results or not results[t].fulfilled}


def evaluate(expr: DependsExpr, results: Mapping[str, TaskResult],
             continue_on: Mapping[str, ContinueOn] | None = None) -> bool:
    """Whether a task with this ``depends`` should run, given its dependencies' results.

    Every named task must be in ``results`` (see :func:`pending`); ``continue_on`` gives
    the ``continueOn`` of dependency tasks, which widens their bare references.
    """
    missing = sorted(t for t in tasks_of(expr) if t not in results)
    if missing:
        raise ExpressionError(f"depends refers to tasks without a result yet: {', '.join(missing)}")
    return _eval(expr, results, continue_on or {})


def _eval(node: DependsExpr, results: Mapping[str, TaskResult], cont: Mapping[str, ContinueOn]) -> bool:
    if isinstance(node, Ref):
        r = results[node.task]
        if node.result is not None:
            return r.has(node.result)
        c = cont.get(node.task, ContinueOn())
        return (r.has("Succeeded") or r.has("Skipped") or r.has("Daemoned")
                or (c.error and r.has("Errored")) or (c.failed and r.has("Failed")))
    if isinstance(node, Not):
        return not _eval(node.operand, results, cont)
    if isinstance(node, And):
        return all(_eval(x, results, cont) for x in node.items)
    return any(_eval(x, results, cont) for x in node.items)


def to_text(expr: DependsExpr) -> str:
    """Render an expression back to ``depends`` syntax (fully parenthesised)."""
    if isinstance(expr, Ref):
        return expr.task if expr.result is None else f"{expr.task}.{expr.result}"
    if isinstance(expr, Not):
        return f"!{to_text(expr.operand)}"
    op = " && " if isinstance(expr, And) else " || "
    return "(" + op.join(to_text(x) for x in expr.items) + ")"
