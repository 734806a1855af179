"""Wiring errors in chute.dsl: clear messages that name the user's source line."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, NamedTuple

import pytest

from chute.dsl import (
    Collected,
    Dataset,
    Elif,
    Else,
    ExitHandler,
    If,
    Input,
    Model,
    Output,
    ParallelFor,
    PipelineError,
    compile_pipeline,
    component,
    pipeline,
)
from chute.errors import SpecError, UserError

THIS = Path(__file__)


def line_of(marker: str) -> int:
    """The line of this file holding ``# <marker>`` (so tests do not hard-code numbers)."""
    for i, line in enumerate(THIS.read_text().splitlines(), start=1):
        if line.rstrip().endswith(f"# {marker}"):
            return i
    raise AssertionError(f"marker {marker} not found")


def assert_at(exc: PipelineError, marker: str) -> None:
    assert exc.location.endswith(f"{THIS.name}:{line_of(marker)}"), exc.location
    assert str(exc).startswith(exc.location + ": ")


@component
def load(rows: int, data: Output[Dataset]):
    with open(data.path, "w") as fh:
        fh.write(str(rows))


@component
def train(data: Input[Dataset], n_estimators: int, model: Output[Model]) -> float:
    return 0.5


@component
def echo(text: str) -> str:
    return text


@component
def count(n: int) -> int:
    return n


@component
def nothing():
    pass


class Pair(NamedTuple):
    a: int
    b: str


@component
def pair() -> Pair:
    return Pair(1, "x")


@component
def total(values: list[int]) -> int:
    return sum(values)


def test_type_mismatch_names_parameter_source_and_line():
    @pipeline
    def p():
        data = load(rows=3)
        train(data=data.outputs["data"], n_estimators=data.outputs["data"])  # L-type

    with pytest.raises(PipelineError) as info:
        compile_pipeline(p)
    assert info.value.message == ("train(): parameter 'n_estimators' expects int, "
                                  "got Dataset from 'load'")
    assert_at(info.value, "L-type")
    assert isinstance(info.value, SpecError) and isinstance(info.value, UserError)


def test_constant_of_wrong_type_and_artifact_given_a_parameter():
    @pipeline
    def p1():
        count(n="three")  # L-const

    with pytest.raises(PipelineError) as info:
        compile_pipeline(p1)
    assert "count(): parameter 'n' expects int, got str 'three'" in str(info.value)
    assert_at(info.value, "L-const")

    @pipeline
    def p2():
        e = echo(text="x")
        train(data=e.output, n_estimators=1)  # L-art

    with pytest.raises(PipelineError) as info:
        compile_pipeline(p2)
    assert "parameter 'data' expects Input[Dataset], got str from 'echo'" in str(info.value)
    assert_at(info.value, "L-art")


def test_int_output_feeds_float_but_str_does_not_feed_int():
    @component
    def half(x: float) -> float:
        return x / 2

    @pipeline
    def ok():
        half(x=count(n=3).output)

    compile_pipeline(ok)

    @pipeline
    def bad():
        count(n=echo(text="1").output)  # L-str-int

    with pytest.raises(PipelineError) as info:
        compile_pipeline(bad)
    assert "expects int, got str from 'echo'" in str(info.value)
    assert_at(info.value, "L-str-int")


def test_missing_and_unknown_arguments():
    @pipeline
    def p():
        count()  # L-missing

    with pytest.raises(PipelineError) as info:
        compile_pipeline(p)
    assert "count(): missing argument 'n'" in str(info.value)
    assert_at(info.value, "L-missing")

    @pipeline
    def q():
        count(n=1, m=2)  # L-unknown

    with pytest.raises(PipelineError) as info:
        compile_pipeline(q)
    assert "count():" in str(info.value) and "'m'" in str(info.value)
    assert_at(info.value, "L-unknown")


def test_output_artifact_cannot_be_passed():
    @pipeline
    def p():
        d = load(rows=1)
        load(rows=1, data=d.outputs["data"])  # L-outart

    with pytest.raises(PipelineError) as info:
        compile_pipeline(p)
    assert "'data' is an output artifact" in str(info.value)
    assert_at(info.value, "L-outart")


def test_unknown_output_name_lists_the_known_ones():
    @pipeline
    def p():
        t = pair()
        echo(text=t.outputs["c"])  # L-unknown-out

    with pytest.raises(PipelineError) as info:
        compile_pipeline(p)
    assert "task 'pair' (pair()) has no output 'c'; its outputs: 'a', 'b'" in str(info.value)
    assert_at(info.value, "L-unknown-out")


def test_output_property_needs_exactly_one_output():
    @pipeline
    def p():
        echo(text=pair().output)  # L-two

    with pytest.raises(PipelineError) as info:
        compile_pipeline(p)
    assert "has 2 outputs ('a', 'b'); use .outputs['name']" in str(info.value)
    assert_at(info.value, "L-two")

    @pipeline
    def q():
        echo(text=nothing().output)

    with pytest.raises(PipelineError, match="has 0 outputs"):
        compile_pipeline(q)


def test_namedtuple_outputs_are_typed():
    @pipeline
    def p():
        t = pair()
        count(n=t.outputs["b"])  # L-nt

    with pytest.raises(PipelineError) as info:
        compile_pipeline(p)
    assert "expects int, got str from 'pair'" in str(info.value)
    assert_at(info.value, "L-nt")


def test_loop_variable_outside_its_loop():
    @pipeline
    def p():
        with ParallelFor([1, 2, 3]) as item:
            count(n=item)
        count(n=item)  # L-loopvar

    with pytest.raises(PipelineError) as info:
        compile_pipeline(p)
    assert "the loop item of 'for-loop' outside its loop" in str(info.value)
    assert_at(info.value, "L-loopvar")


def test_loop_output_outside_loop_needs_collected():
    @pipeline
    def p():
        with ParallelFor([1, 2]) as item:
            c = count(n=item)
        count(n=c.output)  # L-loopout

    with pytest.raises(PipelineError) as info:
        compile_pipeline(p)
    assert "runs inside the loop 'for-loop'" in str(info.value)
    assert "Collected" in str(info.value)
    assert_at(info.value, "L-loopout")


def test_collected_inside_its_own_loop_is_an_error():
    @pipeline
    def p():
        with ParallelFor([1, 2]) as item:
            c = count(n=item)
            total(values=Collected(c.output))  # L-coll-in

    with pytest.raises(PipelineError) as info:
        compile_pipeline(p)
    assert "inside or beside its loop" in str(info.value)
    assert_at(info.value, "L-coll-in")


def test_collected_type_is_a_list():
    @pipeline
    def p():
        with ParallelFor([1, 2]) as item:
            c = count(n=item)
        count(n=Collected(c.output))  # L-coll-type

    with pytest.raises(PipelineError) as info:
        compile_pipeline(p)
    assert "expects int, got list[int] from" in str(info.value)
    assert_at(info.value, "L-coll-type")


def test_cycle_through_after_names_the_after_call():
    @pipeline
    def p():
        a = count(n=1)
        b = count(n=a.output)
        a.after(b)  # L-cycle

    with pytest.raises(PipelineError) as info:
        compile_pipeline(p)
    assert "cycle through .after(): " in str(info.value)
    assert "count -> count-2 -> count" in str(info.value)
    assert_at(info.value, "L-cycle")


def test_component_outside_pipeline_is_a_clear_error():
    with pytest.raises(PipelineError) as info:
        count(n=1)  # L-outside
    assert "component count() can only be used inside a @pipeline function" in str(info.value)
    assert_at(info.value, "L-outside")


def test_elif_must_follow_if():
    @pipeline
    def p():
        c = echo(text="x")
        with Elif(c.output == "y"):  # L-elif
            echo(text="z")

    with pytest.raises(PipelineError) as info:
        compile_pipeline(p)
    assert "Elif must directly follow an If or Elif block" in str(info.value)
    assert_at(info.value, "L-elif")

    @pipeline
    def q():
        c = echo(text="x")
        with If(c.output == "y"):
            echo(text="z")
        echo(text="between")
        with Else():  # L-else
            echo(text="w")

    with pytest.raises(PipelineError) as info:
        compile_pipeline(q)
    assert_at(info.value, "L-else")


def test_python_if_on_a_channel_is_refused():
    @pipeline
    def p():
        c = echo(text="x")
        if c.output == "y":  # L-pyif
            echo(text="z")

    with pytest.raises(PipelineError) as info:
        compile_pipeline(p)
    assert "use `with chute.dsl.If(...)`" in str(info.value)
    assert_at(info.value, "L-pyif")


def test_output_of_conditional_task_used_outside_its_branch():
    @pipeline
    def p():
        c = echo(text="x")
        with If(c.output == "y"):
            inner = echo(text="z")
        echo(text=inner.output)  # L-branch

    with pytest.raises(PipelineError) as info:
        compile_pipeline(p)
    assert "only runs under a condition" in str(info.value)
    assert_at(info.value, "L-branch")


def test_exit_handler_rules():
    @pipeline
    def nested():
        with ParallelFor([1]) as i:
            e = echo(text="bye")
            with ExitHandler(e):  # L-exit-nested
                count(n=i)

    with pytest.raises(PipelineError) as info:
        compile_pipeline(nested)
    assert "top level" in str(info.value)
    assert_at(info.value, "L-exit-nested")

    @pipeline
    def uses_output():
        first = echo(text="x")
        e = echo(text=first.output)
        with ExitHandler(e):  # L-exit-out
            count(n=1)

    with pytest.raises(PipelineError) as info:
        compile_pipeline(uses_output)
    assert "an exit handler can only use constants" in str(info.value)
    assert_at(info.value, "L-exit-out")

    @pipeline
    def consumes_exit():
        e = echo(text="bye")
        with ExitHandler(e):
            echo(text=e.output)

    with pytest.raises(PipelineError, match="exit task 'echo' cannot be used"):
        compile_pipeline(consumes_exit)


def test_bad_signatures_fail_at_decoration_with_the_def_line():
    with pytest.raises(PipelineError) as info:
        @component
        def f(x: set):  # L-badtype
            pass
    assert "component f(): parameter 'x': unsupported type" in str(info.value)
    assert info.value.location.endswith(f":{line_of('L-badtype') - 1}") or \
        info.value.location.endswith(f":{line_of('L-badtype')}")

    with pytest.raises(PipelineError, match="annotate artifacts as Input"):
        @component
        def g(x: Dataset):
            pass

    with pytest.raises(PipelineError, match="default of 'x' must be"):
        @component
        def h(x: str = None):  # type: ignore[assignment]  # noqa: RUF013
            pass


def test_parallel_for_checks_items_and_parallelism():
    @pipeline
    def p():
        with ParallelFor(echo(text="x").output) as i:  # L-items
            echo(text=i)

    with pytest.raises(PipelineError) as info:
        compile_pipeline(p)
    assert "ParallelFor: items must be a list, got str from 'echo'" in str(info.value)
    assert_at(info.value, "L-items")

    @pipeline
    def q():
        with ParallelFor([1], parallelism=0) as i:
            count(n=i)

    with pytest.raises(PipelineError, match="parallelism must be a positive int"):
        compile_pipeline(q)


def test_pipeline_parameter_types_and_enum_defaults():
    with pytest.raises(PipelineError, match="default 'c' is not one of"):
        @pipeline
        def p(mode: Literal["a", "b"] = "c"):
            echo(text=mode)

    @pipeline
    def q(n: int = 3):
        echo(text=n)  # L-param

    with pytest.raises(PipelineError) as info:
        compile_pipeline(q)
    assert "expects str, got int from pipeline parameter 'n'" in str(info.value)
    assert_at(info.value, "L-param")


def test_global_names_in_a_component_are_refused_at_compile():
    import json as module_json  # noqa: F401 - used by the component below, on purpose

    SEED = 4

    @component
    def uses_closure() -> int:
        return SEED

    @pipeline
    def p():
        uses_closure()

    with pytest.raises(PipelineError, match="uses variables of an enclosing function"):
        compile_pipeline(p)

    @pipeline
    def q():
        uses_global()

    with pytest.raises(PipelineError, match="uses THRESHOLD from its module"):
        compile_pipeline(q)


THRESHOLD = 0.5


@component
def uses_global() -> float:
    return THRESHOLD
