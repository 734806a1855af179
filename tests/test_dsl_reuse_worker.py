"""``reuse_worker``: the component option, its place in the compiled step config, and
``chute run --reuse-workers``."""

from __future__ import annotations

import ast
import json
import os
import textwrap
from pathlib import Path

import pytest

from chute import dsl
from chute.cli.app import main
from chute.dsl import compile_pipeline, component, pipeline

pytest_plugins = ["tests.fixtures.cli"]  # the `run` fixture: the chute CLI in-process


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



def test_run_help_names_the_option(capsys):
    assert main(["run", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.replace("│", " ").split())  # unwrap the box
    assert "--reuse-workers" in text and "reused worker processes" in text


# Two steps in a chain: the first leaves a mark in the environment and in an imported
# module; the second reports which of them it sees. Both report their process id.
PIPELINES = textwrap.dedent("""
    from typing import NamedTuple

    from chute.dsl import component, pipeline


    class Out(NamedTuple):
        value: int
        pid: int
        env_seen: bool
        module_seen: bool


    @component(cache=False, reuse_worker=True)
    def double_r(x: int) -> Out:
        import json
        import os

        env_seen = os.environ.get("CHUTE_TEST_MARK") == "1"
        module_seen = getattr(json, "_chute_test_mark", False)
        os.environ["CHUTE_TEST_MARK"] = "1"
        json._chute_test_mark = True
        return (2 * x, os.getpid(), env_seen, module_seen)  # Out is not in the step


    @component(cache=False)
    def double(x: int) -> Out:
        import json
        import os

        env_seen = os.environ.get("CHUTE_TEST_MARK") == "1"
        module_seen = getattr(json, "_chute_test_mark", False)
        os.environ["CHUTE_TEST_MARK"] = "1"
        json._chute_test_mark = True
        return (2 * x, os.getpid(), env_seen, module_seen)  # Out is not in the step


    @pipeline(name="reused")
    def reused(x: int = 3):
        first = double_r(x=x)
        double_r(x=first.outputs["value"])


    @pipeline(name="forked")
    def forked(x: int = 3):
        first = double(x=x)
        double(x=first.outputs["value"])
""")


def _outputs(stdout: str) -> dict[tuple[str, str], str]:
    """The summary's outputs table: (step, output) -> value."""
    out = {}
    for line in stdout.replace("│", " ").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in ("value", "pid", "env_seen", "module_seen"):
            out[(parts[0], parts[1])] = parts[2]
    return out


@pytest.fixture
def pipelines(tmp_path):
    path = tmp_path / "pipes.py"
    path.write_text(PIPELINES)
    return path


@pytest.mark.parametrize("ref, flags, same_worker", [
    ("reused", [], True),                    # @component(reuse_worker=True)
    ("forked", [], False),                   # the default: a process per step
    ("forked", ["--reuse-workers"], True),   # the whole run in reused workers
])
def test_chute_run_reused_workers_end_to_end(run, pipelines, ref, flags, same_worker):
    code, out, err = run("run", f"{pipelines}:{ref}", *flags)
    assert code == 0, err + out
    outs = _outputs(out)
    steps = sorted({step for step, _ in outs})
    assert len(steps) == 2, out
    first, second = steps  # double(-r) and double(-r)-2
    # the same outputs in every mode
    assert (outs[(first, "value")], outs[(second, "value")]) == ("6", "12")
    pids = {outs[(first, "pid")], outs[(second, "pid")]}
    assert str(os.getpid()) not in pids  # never in the controller's own process
    assert (len(pids) == 1) is same_worker
    # the environment is the step's own in every mode; an imported module's globals
    # persist into the next step of the same worker only
    assert outs[(second, "env_seen")] == "false"
    assert outs[(second, "module_seen")] == ("true" if same_worker else "false")


def test_reuse_workers_with_every_step_cold_is_refused_before_submitting(run, monkeypatch,
                                                                         pipelines):
    monkeypatch.setenv("CHUTE_WARM_STEPS", "0")
    code, out, err = run("run", f"{pipelines}:reused", "--reuse-workers")
    assert code == 2
    assert "--reuse-workers: CHUTE_WARM_STEPS=0 in the environment" in err
    code, out, err = run("list")
    assert code == 0 and "reused-" not in out  # nothing was submitted
    monkeypatch.setenv("CHUTE_WARM_STEPS", "reuse")  # agrees with the flag
    code, out, err = run("run", f"{pipelines}:reused", "--reuse-workers")
    assert code == 0, err + out
    assert "reused-" in run("list")[1]


@pytest.mark.parametrize("ref, same_worker", [("reused", True), ("forked", False)])
def test_submitted_yaml_runs_sdk_steps_warm_too(run, pipelines, tmp_path, ref, same_worker):
    """`chute submit --wait` (and so `chute controller` and the server, which build the same
    executor) runs compiled SDK steps as `chute run` does: ``reuse_worker`` components in
    one reused worker, the others each in a process forked from a warm zygote."""
    out_yaml = tmp_path / f"{ref}.yaml"
    code, out, err = run("compile", f"{pipelines}:{ref}", "-o", str(out_yaml))
    assert code == 0, err + out
    code, out, err = run("submit", str(out_yaml), "--wait")
    assert code == 0, err + out
    name = out.split()[0]
    from chute.config import load_settings
    from chute.store import queries as q
    from chute.store.db import open_store

    with open_store(load_settings()).read() as s:
        row = q.get_workflow(s, name)
        assert row.phase == "Succeeded"
        pods = [n for n in q.nodes_of(s, row.uid) if n.type == "Pod"]
        params = [{p["name"]: p.get("value") for p in (n.outputs or {}).get("parameters", [])}
                  for n in pods]
        dirs = [n.step_dir for n in pods]
    assert sorted(p["value"] for p in params) == ["12", "6"]
    pids = {p["pid"] for p in params}
    assert str(os.getpid()) not in pids
    assert (len(pids) == 1) is same_worker
    if not same_worker:  # each step forked from a zygote, as step.pid records
        for d in dirs:
            assert json.loads((Path(d) / "step.pid").read_text()).get("zygote"), d
