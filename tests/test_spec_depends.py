"""Enhanced depends logic: parsing, task extraction and evaluation as in Argo."""

from __future__ import annotations

import re

import pytest
import yaml

from chute.errors import ExpressionError
from chute.spec import depends as d
from chute.spec.depends import ContinueOn, TaskResult

OK = TaskResult("Succeeded")
FAIL = TaskResult("Failed")
ERR = TaskResult("Error")
SKIP = TaskResult("Skipped")
OMIT = TaskResult("Omitted")
DAEMON = TaskResult("Running", daemoned=True)


def ev(text: str, **results: TaskResult) -> bool:
    return d.evaluate(d.parse(text), {k.replace("_", "-"): v for k, v in results.items()})


@pytest.mark.parametrize(
    "text, results, expected",
    [
        # a bare name is (Succeeded || Skipped || Daemoned)
        ("A", {"A": OK}, True),
        ("A", {"A": SKIP}, True),
        ("A", {"A": DAEMON}, True),
        ("A", {"A": FAIL}, False),
        ("A", {"A": ERR}, False),
        ("A", {"A": OMIT}, False),
        # each result
        ("A.Succeeded", {"A": OK}, True),
        ("A.Succeeded", {"A": SKIP}, False),
        ("A.Failed", {"A": FAIL}, True),
        ("A.Failed", {"A": ERR}, False),
        ("A.Errored", {"A": ERR}, True),
        ("A.Errored", {"A": FAIL}, False),
        ("A.Skipped", {"A": SKIP}, True),
        ("A.Omitted", {"A": OMIT}, True),
        ("A.Omitted", {"A": SKIP}, False),
        ("A.Daemoned", {"A": DAEMON}, True),
        ("A.Daemoned", {"A": TaskResult("Pending", daemoned=True)}, False),
        ("A.Daemoned", {"A": OK}, False),
        # operators and precedence: ! > && > ||
        ("A && B", {"A": OK, "B": OK}, True),
        ("A && B", {"A": OK, "B": FAIL}, False),
        ("A || B", {"A": FAIL, "B": OK}, True),
        ("!A.Failed", {"A": OK}, True),
        ("!A.Failed", {"A": FAIL}, False),
        ("A.Failed || B && C", {"A": FAIL, "B": FAIL, "C": FAIL}, True),
        ("(A.Failed || B) && C", {"A": FAIL, "B": FAIL, "C": FAIL}, False),
        ("!(A || B)", {"A": FAIL, "B": ERR}, True),
        ("!!A", {"A": OK}, True),
        # examples from Argo's docs and examples/
        ("A && (C.Succeeded || C.Failed)", {"A": OK, "C": FAIL}, True),
        ("A && (C.Succeeded || C.Failed)", {"A": OK, "C": ERR}, False),
        ("B.Failed && C", {"B": FAIL, "C": OK}, True),
        ("B.Failed && C", {"B": OK, "C": OK}, False),
        ("(task-2.Succeeded || task-2.Skipped) && !task-3.Failed", {"task-2": SKIP, "task-3": OK}, True),
        ("(task-2.Succeeded || task-2.Skipped) && !task-3.Failed", {"task-2": SKIP, "task-3": FAIL}, False),
        ("task || task-2.Failed", {"task": FAIL, "task-2": FAIL}, True),
        ("should-execute-2.Succeeded || should-not-execute", {"should-execute-2": SKIP, "should-not-execute": SKIP}, True),
        ("producer.Succeeded || producer.Skipped", {"producer": SKIP}, True),
        ("inner-B && inner-C", {"inner-B": OK, "inner-C": OK}, True),
        ("a && svc", {"a": OK, "svc": DAEMON}, True),
        ("  A\n&&\tB  ", {"A": OK, "B": OK}, True),
    ],
)
def test_evaluate_table(text, results, expected):
    assert d.evaluate(d.parse(text), results) is expected


@pytest.mark.parametrize(
    "children, any_succeeded, all_failed",
    [
        (("Succeeded", "Failed"), True, False),
        (("Failed", "Failed"), False, True),
        (("Failed", "Error"), False, False),
        ((), False, False),  # an empty group: AllFailed needs at least one child
        (("Skipped",), False, False),
    ],
)
def test_any_succeeded_all_failed(children, any_succeeded, all_failed):
    group = TaskResult("Failed" if not any_succeeded else "Succeeded", children=children)
    assert ev("A.AnySucceeded", A=group) is any_succeeded
    assert ev("A.AllFailed", A=group) is all_failed
    # not a group: neither holds (Argo only computes them for TaskGroup nodes)
    assert ev("A.AnySucceeded", A=OK) is False
    assert ev("A.AllFailed", A=FAIL) is False


def test_continue_on_widens_a_bare_reference():
    expr = d.parse("A")
    assert d.evaluate(expr, {"A": FAIL}) is False
    assert d.evaluate(expr, {"A": FAIL}, {"A": ContinueOn(failed=True)}) is True
    assert d.evaluate(expr, {"A": ERR}, {"A": ContinueOn(failed=True)}) is False
    assert d.evaluate(expr, {"A": ERR}, {"A": ContinueOn(error=True)}) is True
    # an explicit result is not widened
    assert d.evaluate(d.parse("A.Succeeded"), {"A": FAIL}, {"A": ContinueOn(failed=True)}) is False


def test_tasks_of_and_pending():
    expr = d.parse("A && (b-1.Succeeded || !c_2.Failed) || A.Skipped")
    assert d.tasks_of(expr) == {"A", "b-1", "c_2"}
    assert d.pending(expr, {"A": OK}) == {"b-1", "c_2"}
    assert d.pending(expr, {"A": OK, "b-1": TaskResult("Running"), "c_2": FAIL}) == {"b-1"}
    assert d.pending(expr, {"A": OK, "b-1": OK, "c_2": DAEMON}) == set()
    with pytest.raises(ExpressionError, match="b-1"):
        d.evaluate(expr, {"A": OK})


def test_from_dependencies_matches_conjunction():
    legacy = d.from_dependencies(["A", "B", "C"])
    assert d.tasks_of(legacy) == {"A", "B", "C"}
    assert d.to_text(legacy) == "(A && B && C)"
    all_results = [OK, SKIP, FAIL, ERR, OMIT, DAEMON]
    new = d.parse("A && B && C")
    for a in all_results:
        for b in all_results:
            r = {"A": a, "B": b, "C": OK}
            assert d.evaluate(legacy, r) == d.evaluate(new, r)
    assert d.to_text(d.from_dependencies(["only"])) == "only"
    with pytest.raises(ExpressionError):
        d.from_dependencies([])


@pytest.mark.parametrize(
    "text, offset",
    [
        ("", 0),
        ("A &&", 4),
        ("A.Success", 2),
        ("A.succeeded", 2),
        ("(A || B", 7),
        ("A B", 2),
        ("A & B", 2),
        ("A and B", 2),
        ("&& A", 0),
        ("A.", 2),
        ("A || (", 6),
    ],
)
def test_parse_errors_name_the_offset(text, offset):
    with pytest.raises(ExpressionError) as e:
        d.parse(text)
    assert f"offset {offset}" in str(e.value)


def test_deep_and_long_inputs_are_bounded():
    with pytest.raises(ExpressionError, match="deeper"):
        d.parse("(" * 1000 + "A" + ")" * 1000)
    long_chain = " && ".join(f"t{i}" for i in range(500))
    expr = d.parse(long_chain)  # n-ary, so no deep recursion when evaluating
    assert d.evaluate(expr, {f"t{i}": OK for i in range(500)}) is True
    with pytest.raises(ExpressionError, match="longer"):
        d.parse("A && " * 2000 + "A")


def test_every_depends_in_argo_examples_parses(argo_dir):
    seen = 0
    for path in sorted((argo_dir / "examples").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            for text in _find_depends(doc):
                expr = d.parse(text)
                names = d.tasks_of(expr)
                assert names and all(re.fullmatch(r"[A-Za-z0-9][-A-Za-z0-9_]*", n) for n in names), (path, text)
                # evaluating with every task succeeded runs the task unless it asks for a failure
                results = {n: OK for n in names}
                assert isinstance(d.evaluate(expr, results), bool)
                seen += 1
    assert seen >= 30


def _find_depends(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "depends" and isinstance(v, str):
                yield v
            else:
                yield from _find_depends(v)
    elif isinstance(node, list):
        for v in node:
            yield from _find_depends(v)
