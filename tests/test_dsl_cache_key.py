"""RELIABILITY L-5 (cache-key completeness) for SDK steps: every input that can reach the
step's process changes its cache key, and the unchanged pipeline keeps it. Parameters and
input-artifact bytes are checked end to end in tests/test_engine_cache.py."""

from __future__ import annotations

import pytest

from chute.dsl import component, pipeline
from chute.dsl.compiler import compile_pipeline
from chute.spec.annotations import LOCAL_CACHE_KEY


def _key(make_component, **task_setup) -> str:
    comp = make_component()

    @pipeline(name="l5")
    def p(x: int = 1):
        task = comp(x=x)
        for name, value in task_setup.get("env", {}).items():
            task.set_env_variable(name, value)

    wf = compile_pipeline(p)
    tmpl = next(t for t in wf["spec"]["templates"] if t.get("script"))
    memo = tmpl.get("memoize")
    key = memo["key"] if memo else tmpl["metadata"]["annotations"][LOCAL_CACHE_KEY]
    return key.split("-{{")[0]  # the static part; the {{...}} part hashes the parameters


def base(**opts):
    def make():
        @component(**opts)
        def step(x: int) -> int:
            return x + 1
        return step
    return make


def other_code():
    @component
    def step(x: int) -> int:
        return x + 2
    return step


def test_unchanged_pipeline_keeps_its_key():
    assert _key(base()) == _key(base())


@pytest.mark.parametrize("variant", [
    pytest.param(lambda: _key(other_code), id="function code"),
    pytest.param(lambda: _key(base(image="python:3.12")), id="image"),
    pytest.param(lambda: _key(base(packages=["numpy"])), id="packages"),
    pytest.param(lambda: _key(base(env={"MODE": "eval"})), id="component env"),
    pytest.param(lambda: _key(base(), env={"MODE": "eval"}), id="task env var"),
    pytest.param(lambda: _key(base(secrets={"TOKEN": ("s", "k")})), id="secret env var"),
])
def test_each_mutation_changes_the_key(variant):
    assert variant() != _key(base())


def test_changing_one_env_value_changes_the_key():
    assert _key(base(env={"MODE": "train"})) != _key(base(env={"MODE": "eval"}))


def test_parameters_are_part_of_the_key_template():
    comp = base()()

    @pipeline(name="l5p")
    def p(x: int = 1):
        comp(x=x)

    tmpl = next(t for t in compile_pipeline(p)["spec"]["templates"] if t.get("script"))
    assert "inputs.parameters.x" in tmpl["memoize"]["key"]
