"""Caching end to end (issue 8 item 4, RELIABILITY L-5): a 3-step SDK pipeline whose steps
pass a parameter and artifacts, run twice and then with one parameter changed."""

from __future__ import annotations

import io
import textwrap

import pytest

PIPELINE = textwrap.dedent('''
    from chute.dsl import Dataset, Input, Output, component, pipeline

    @component
    def make(n: int, data: Output[Dataset]) -> int:
        with open(data.path, "w") as f:
            f.write(",".join(str(i) for i in range(n)))
        return n

    @component
    def double(data: Input[Dataset], out: Output[Dataset]) -> int:
        values = [int(v) * 2 for v in open(data.path).read().split(",")]
        with open(out.path, "w") as f:
            f.write(",".join(map(str, values)))
        return len(values)

    @component
    def total(data: Input[Dataset], offset: int) -> int:
        return sum(int(v) for v in open(data.path).read().split(",")) + offset

    @pipeline(name="cache-three")
    def three(n: int = 4, offset: int = 0):
        made = make(n=n)
        doubled = double(data=made.outputs["data"])
        total(data=doubled.outputs["out"], offset=offset)
''')


@pytest.fixture
def run(chute_home, tmp_path):
    from rich.console import Console

    from chute.cli.run import run_pipeline

    path = tmp_path / "three.py"
    path.write_text(PIPELINE)

    def go(**params):
        console = Console(file=io.StringIO(), width=120)
        row, nodes = run_pipeline(str(path), {k: str(v) for k, v in params.items()},
                                  timeout=180, console=console, out=console, live=False)
        assert row.phase == "Succeeded"
        return {n.display_name: n for n in nodes if n.type == "Pod"}

    return go


def _result(pods) -> str:
    return next(p["value"] for p in pods["total"].outputs["parameters"] if p["name"] == "Output")


def test_second_run_is_all_cached_and_a_changed_parameter_reruns_only_what_depends(run):
    first = run(n=4, offset=0)
    assert not any(p.cached for p in first.values())
    assert _result(first) == "12"  # (0+1+2+3) * 2

    again = run(n=4, offset=0)
    assert {name for name, p in again.items() if p.cached} == {"make", "double", "total"}
    assert _result(again) == "12"

    # offset only reaches `total`: the two upstream steps stay cached
    changed = run(n=4, offset=5)
    assert {name for name, p in changed.items() if p.cached} == {"make", "double"}
    assert _result(changed) == "17"

    # n changes what `make` writes: the artifact digests change, so everything reruns
    bigger = run(n=5, offset=5)
    assert not any(p.cached for p in bigger.values())
    assert _result(bigger) == "25"
