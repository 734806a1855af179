"""Randomly wired pipelines (nested loops, conditions, fan-ins, .after()) always compile to
YAML that Argo's schema accepts and chute.spec.validate finds nothing wrong with."""

from __future__ import annotations

import functools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chute.dsl import (
    Collected,
    Dataset,
    If,
    Input,
    Output,
    ParallelFor,
    compile_pipeline,
    compile_to_yaml,
    component,
    pipeline,
)
from tests.conftest import ARGO_DIR


@component
def num(x: int) -> int:
    return x


@component
def nums(n: int) -> list[int]:
    return list(range(n))


@component
def total(xs: list[int]) -> int:
    return sum(xs)


@component
def make(d: Output[Dataset]) -> int:
    with open(d.path, "w") as fh:
        fh.write("1")
    return 1


@component
def use(d: Input[Dataset], x: int) -> int:
    return x


# A program is a list of statements, each picked from these shapes; indexes pick earlier
# values visible at that point (values in closed loops are only reachable via Collected).
STATEMENT = st.one_of(
    st.tuples(st.just("num"), st.integers(0, 50)),
    st.tuples(st.just("make"), st.integers(0, 50)),
    st.tuples(st.just("loop"), st.booleans(), st.sampled_from([None, 2]), st.integers(0, 3)),
    st.tuples(st.just("if"), st.integers(0, 50), st.integers(0, 3)),
    st.tuples(st.just("end"),),
    st.tuples(st.just("after"), st.integers(0, 50), st.integers(0, 50)),
)


def build(program):
    """A pipeline function executing ``program``; returns it."""

    def body(seed: int = 1):
        stack = []  # open context managers
        scopes: list[dict] = [{"ints": [seed], "datasets": [], "tasks": [], "closed": []}]
        for stmt in program:
            top = scopes[-1]
            kind = stmt[0]
            if kind == "num":
                t = num(x=top["ints"][stmt[1] % len(top["ints"])])
                top["ints"].append(t.output)
                top["tasks"].append(t)
            elif kind == "make":
                t = make()
                top["datasets"].append(t.outputs["d"])
                if top["datasets"]:
                    u = use(d=top["datasets"][stmt[1] % len(top["datasets"])],
                            x=top["ints"][stmt[1] % len(top["ints"])])
                    top["tasks"].append(u)
            elif kind == "loop" and len(stack) < 4:
                items = nums(n=3).output if stmt[1] else [1, 2, 3]
                cm = ParallelFor(items, parallelism=stmt[2])
                item = cm.__enter__()
                stack.append(cm)
                first = num(x=item)  # a loop body is never empty
                scopes.append({"ints": [*top["ints"], item, first.output],
                               "datasets": list(top["datasets"]),
                               "tasks": [*top["tasks"], first], "closed": [], "loop": True})
            elif kind == "if" and len(stack) < 4:
                cm = If(top["ints"][stmt[1] % len(top["ints"])] > stmt[2])
                cm.__enter__()
                stack.append(cm)
                scopes.append({"ints": list(top["ints"]), "datasets": list(top["datasets"]),
                               "tasks": list(top["tasks"]), "closed": [], "loop": False})
            elif kind == "end" and stack:
                stack.pop().__exit__(None, None, None)
                inner = scopes.pop()
                if inner.get("loop"):
                    own = [t for t in inner["tasks"] if t not in scopes[-1]["tasks"]
                           and t.component is num]
                    if own:
                        scopes[-1]["ints"].append(total(xs=Collected(own[-1].output)).output)
            elif kind == "after" and len(top["tasks"]) >= 2:
                a = top["tasks"][stmt[1] % len(top["tasks"])]
                b = top["tasks"][stmt[2] % len(top["tasks"])]
                if top["tasks"].index(a) > top["tasks"].index(b):  # only backwards: no cycles
                    a.after(b)
        while stack:
            stack.pop().__exit__(None, None, None)
        num(x=seed)

    return pipeline(name="random")(body)


@functools.cache
def validator():
    jsonschema = pytest.importorskip("jsonschema")
    return jsonschema.Draft202012Validator(json.loads((ARGO_DIR / "schema.json").read_text()))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(STATEMENT, max_size=25))
def test_random_pipelines_compile_to_valid_argo(program):
    p = build(program)
    try:
        doc = compile_pipeline(p)
    except Exception as exc:  # noqa: BLE001 - only wiring errors a user could make
        pytest.fail(f"compile failed: {exc!r}")
    assert [e.message for e in validator().iter_errors(doc)] == []
    try:
        from chute.spec.loader import load_documents
        from chute.spec.validate import validate
    except ImportError:
        return
    (res,) = load_documents(compile_to_yaml(p))
    assert [str(i) for i in validate(res)] == []
    # every DAG task references only tasks it depends on, in its own DAG
    for tmpl in doc["spec"]["templates"]:
        names = {t["name"] for t in tmpl.get("dag", {}).get("tasks", [])}
        for t in tmpl.get("dag", {}).get("tasks", []):
            assert set(t.get("dependencies", [])) <= names - {t["name"]}
