"""``reuse_worker``: the component option, its place in the compiled step config, and
``chute run --reuse-workers``."""

from __future__ import annotations

import ast
import json

import pytest

from chute import dsl
from chute.dsl import compile_pipeline, component, pipeline


@component
def plain(n: int) -> int:
    return n


@component(reuse_worker=True, retries=1)
def reusable(n: int) -> int:
    return n


def step_config(template: dict) -> dict:
    """The JSON literal the compiled script passes to ``_chute_main``, parsed."""
    tree = ast.parse(template["script"]["source"])
    (call,) = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
               and isinstance(n.func, ast.Name) and n.func.id == "_chute_main"]
    return json.loads(call.args[1].value)


def templates(doc: dict) -> dict[str, dict]:
    return {t["name"]: t for t in doc["spec"]["templates"]}


def test_reuse_worker_is_in_the_step_config_only_when_set():
    @pipeline(name="reuse")
    def p():
        plain(n=1)
        reusable(n=2)

    ts = templates(compile_pipeline(p))
    assert step_config(ts["reusable"])["reuse_worker"] is True
    assert "reuse_worker" not in step_config(ts["plain"])
    assert '"reuse_worker"' not in ts["plain"]["script"]["source"]
    # nothing else of the template changes: the option is read by a local executor only
    assert ts["reusable"]["retryStrategy"] == {"limit": "1"}
    assert ts["reusable"]["script"]["command"] == ["python3"]


def test_set_reuse_worker_on_one_task_gives_it_its_own_template_and_the_same_cache():
    @pipeline(name="reuse-task")
    def p():
        plain(n=1)
        plain(n=2).set_reuse_worker()
        reusable(n=3).set_reuse_worker(False)

    doc = compile_pipeline(p)
    dag = {t["name"]: t for t in templates(doc)["reuse-task"]["dag"]["tasks"]}
    ts = templates(doc)
    assert dag["plain"]["template"] == "plain" and dag["plain-2"]["template"] == "plain-2"
    assert "reuse_worker" not in step_config(ts["plain"])
    assert step_config(ts["plain-2"])["reuse_worker"] is True
    assert "reuse_worker" not in step_config(ts[dag["reusable"]["template"]])
    # where a step runs does not change what it computes: one cache namespace
    assert ts["plain"]["memoize"]["key"] == ts["plain-2"]["memoize"]["key"]


def test_reuse_worker_must_be_a_bool():
    with pytest.raises(dsl.PipelineError, match="reuse_worker must be True or False"):
        @component(reuse_worker="yes")  # type: ignore[arg-type]
        def bad() -> None:
            pass

