"""PythonExecutor: compiled SDK steps on warm zygotes behave as process steps, only faster.

Every test runs real processes: the zygote, its supervisors, the forked steps; and, for
comparison, the same compiled step on the LocalExecutor (a cold ``python3 script``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from chute.dsl import Dataset, Output, component
from chute.dsl.script import ART_OUT_DIR, PARAM_OUT_DIR, build_source
from chute.executors.base import CANCELLED, FAILED, SUCCEEDED, TIMEOUT, LaunchSpec
from chute.executors.local import LocalExecutor
from chute.executors.python import PythonExecutor
from chute.executors.warm_worker import RUNTIME_MODULES, is_sdk_step, preload_modules
from tests.conftest import REPO
from tests.fixtures.executor import wait

# ---------------------------------------------------------------- components under test


@component
def greet(name: str, data: Output[Dataset]) -> str:
    import sys

    print(f"hello {name}")
    print("to stderr", file=sys.stderr)
    with open(data.path, "w") as fh:
        fh.write(name * 3)
    return name.upper()


@component
def explode(n: int) -> int:
    values = [1, 2, n]
    if n > 2:
        raise ValueError(f"boom {n}")
    return sum(values)


@component
def spawn_and_sleep(pidfile: str) -> str:
    import subprocess
    import time

    child = subprocess.Popen(["sleep", "60"])
    with open(pidfile, "w") as fh:
        fh.write(str(child.pid))
    time.sleep(60)
    return "never"


@component
def private_tmp(tag: str) -> str:
    import os
    import time

    with open(f"/tmp/mine-{tag}", "w") as fh:
        fh.write(tag)
    time.sleep(0.5)  # the other step writes its files meanwhile
    seen = sorted(n for n in os.listdir("/tmp") if n.startswith("mine-"))
    return ",".join(seen)


@component
def leak(write: bool) -> str:
    import json
    import os

    before = f"{hasattr(json, 'chute_leak')},{'CHUTE_LEAK' in os.environ}"
    if write:
        json.chute_leak = True
        os.environ["CHUTE_LEAK"] = "1"
    return before


@component(packages=["pandas"])
def with_packages() -> int:
    import pandas

    return len(pandas.__version__)


@component
def env_probe() -> str:
    import os

    return f"{os.environ.get('CHUTE_TEST_LATE')},{os.environ.get('CHUTE_TEST_GONE')}"


@component
def use_pandas(n: int) -> int:
    import pandas as pd

    return int(pd.Series(range(n)).sum())


@component
def use_threadmod() -> str:
    import chute_test_threadmod

    return chute_test_threadmod.NAME


# ---------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def warm():
    with PythonExecutor() as executor:
        yield executor


@pytest.fixture(scope="module")
def cold():
    with LocalExecutor() as executor:
        yield executor


def step(root: Path, comp, name="s", inputs=None, **kw) -> LaunchSpec:
    """The launch of a compiled SDK step, as the engine builds it from the template."""
    outs = [f"{PARAM_OUT_DIR}/Output"] if comp.spec.outputs else []
    outs += [f"{ART_OUT_DIR}/{n}" for n in comp.spec.output_artifacts]
    env = {f"CHUTE_INPUT_{k}": str(v) for k, v in (inputs or {}).items()}
    return LaunchSpec(
        workflow_uid="wf",
        node_id=name,
        attempt=0,
        step_dir=root / name,
        log_path=root / "logs" / f"{name}.log",
        argv=["python3"],
        env=env,
        script_source=build_source(comp),
        output_paths=outs,
        **kw,
    )


def run(ex, spec):
    return wait(ex, ex.launch(spec))


def log_lines(spec: LaunchSpec) -> list[tuple[str, str]]:
    """(stream, text) of each log line, the step directory written as <step>."""
    out = []
    for line in spec.log_path.read_text().splitlines():
        ts, stream, text = (line.split(" ", 2) + [""])[:3]
        assert ts.endswith("Z") and "T" in ts  # RFC 3339 UTC, as the supervisor writes
        out.append((stream, text.replace(str(spec.step_dir), "<step>")))
    return out


def zygote_of(spec: LaunchSpec) -> int | None:
    return json.loads((spec.step_dir / "step.pid").read_text()).get("zygote")


def read_outputs(result) -> dict[str, str]:
    return {k: Path(v).read_text() for k, v in result.outputs.items()}


# ---------------------------------------------------------------- tests


def test_only_compiled_sdk_steps_are_warm():
    src = build_source(greet)
    assert is_sdk_step(["python3"], src)
    assert not is_sdk_step(["python3"], "print('hand-written script')")
    assert not is_sdk_step(["bash"], src)
    assert not is_sdk_step(["python3", "-u"], src)
    mods = preload_modules(build_source(use_pandas))
    assert "pandas" in mods and set(RUNTIME_MODULES) <= set(mods)
    assert preload_modules("from . import x\nimport a.b") == tuple(sorted({*RUNTIME_MODULES, "a.b"}))
    # a component with packages may install another version of what it imports
    assert preload_modules(build_source(with_packages)) == tuple(sorted(RUNTIME_MODULES))


def test_outputs_and_logs_identical_to_the_process_path(warm, cold, tmp_path):
    ws = step(tmp_path / "warm", greet, inputs={"name": "ada"})
    cs = step(tmp_path / "cold", greet, inputs={"name": "ada"})
    w, c = run(warm, ws), run(cold, cs)
    assert w.outcome == c.outcome == SUCCEEDED and w.exit_code == c.exit_code == 0
    assert w.result == c.result == "hello ada"
    assert read_outputs(w) == read_outputs(c) == {
        f"{PARAM_OUT_DIR}/Output": "ADA",
        f"{ART_OUT_DIR}/data": "adaadaada",
    }
    assert log_lines(ws) == log_lines(cs)
    assert ("stdout", "hello ada") in log_lines(ws) and ("stderr", "to stderr") in log_lines(ws)
    assert zygote_of(ws) in warm.zygote_pids().values()  # really warm
    assert zygote_of(cs) is None  # and the other really cold


def test_exception_fails_with_the_same_traceback_as_cold(warm, cold, tmp_path):
    ws = step(tmp_path / "warm", explode, inputs={"n": 5})
    cs = step(tmp_path / "cold", explode, inputs={"n": 5})
    w, c = run(warm, ws), run(cold, cs)
    assert w.outcome == c.outcome == FAILED and w.exit_code == c.exit_code == 1
    assert w.message == c.message == "Error (exit code 1)"
    lines = log_lines(ws)
    assert lines == log_lines(cs)  # frame for frame: no executor frames in the warm one
    text = "\n".join(t for _, t in lines)
    assert lines[0] == ("stderr", "Traceback (most recent call last):")
    assert lines[-1] == ("stderr", "ValueError: boom 5")
    assert 'File "<step>/script"' in text and "runpy" not in text
    ok = run(warm, step(tmp_path / "warm", explode, name="ok", inputs={"n": 1}))
    assert ok.outcome == SUCCEEDED and read_outputs(ok) == {f"{PARAM_OUT_DIR}/Output": "4"}


def test_timeout_kills_the_steps_process_tree(warm, tmp_path):
    pidfile = tmp_path / "child.pid"
    s = step(tmp_path, spawn_and_sleep, inputs={"pidfile": str(pidfile)},
             deadline=time.time() + 2.0, grace_seconds=0.5)
    t0 = time.monotonic()
    r = run(warm, s)
    assert r.outcome == TIMEOUT and time.monotonic() - t0 < 10
    assert zygote_of(s) is not None
    child = int(pidfile.read_text())
    step_pid = json.loads((s.step_dir / "step.pid").read_text())["pid"]
    for pid in (child, step_pid):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


def test_cancel_stops_a_warm_step(warm, tmp_path):
    pidfile = tmp_path / "child.pid"
    s = step(tmp_path, spawn_and_sleep, inputs={"pidfile": str(pidfile)}, grace_seconds=0.5)
    h = warm.launch(s)
    end = time.monotonic() + 20
    while not pidfile.exists() and time.monotonic() < end:
        time.sleep(0.01)
    warm.cancel(h, "stop it")
    r = wait(warm, h)
    assert r.outcome == CANCELLED and r.message == "stop it"
    assert not psutil.pid_exists(int(pidfile.read_text()))


def test_concurrent_steps_do_not_see_each_others_tmp(warm, tmp_path):
    specs = [step(tmp_path, private_tmp, name=t, inputs={"tag": t}) for t in ("a", "b")]
    handles = [warm.launch(s) for s in specs]
    results = [wait(warm, h) for h in handles]
    for tag, r in zip(("a", "b"), results, strict=True):
        assert r.outcome == SUCCEEDED
        # each saw only its own /tmp, and its own outputs were collected
        assert read_outputs(r) == {f"{PARAM_OUT_DIR}/Output": f"mine-{tag}"}
    starts = sorted((r.started_at, r.finished_at) for r in results)
    assert starts[1][0] < starts[0][1]  # they did overlap


def test_no_state_leaks_between_steps(warm, tmp_path):
    first = run(warm, step(tmp_path, leak, name="one", inputs={"write": "true"}))
    second = run(warm, step(tmp_path, leak, name="two", inputs={"write": "false"}))
    assert read_outputs(first) == read_outputs(second) == {f"{PARAM_OUT_DIR}/Output": "False,False"}


def test_step_environment_is_the_controllers_at_launch_not_the_zygotes(tmp_path, monkeypatch):
    monkeypatch.setenv("CHUTE_TEST_GONE", "zygote-only")
    with PythonExecutor() as ex:
        first = step(tmp_path, env_probe, name="first")
        assert read_outputs(run(ex, first)) == {f"{PARAM_OUT_DIR}/Output": "None,zygote-only"}
        monkeypatch.delenv("CHUTE_TEST_GONE")
        monkeypatch.setenv("CHUTE_TEST_LATE", "late")
        second = step(tmp_path, env_probe, name="second")
        assert read_outputs(run(ex, second)) == {f"{PARAM_OUT_DIR}/Output": "late,None"}
        assert zygote_of(first) == zygote_of(second) is not None


def test_pandas_step_starts_warm_much_faster_than_a_cold_import(warm, tmp_path):
    pytest.importorskip("pandas")
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", "import pandas"], check=True)
    cold_import = time.monotonic() - t0
    first = step(tmp_path, use_pandas, name="first", inputs={"n": 10})
    assert run(warm, first).outcome == SUCCEEDED  # starts the pandas zygote
    zygotes = warm.zygote_pids()
    key = next(k for k in zygotes if "pandas" in k)
    durations = []
    for i in range(3):
        s = step(tmp_path, use_pandas, name=f"s{i}", inputs={"n": 10})
        r = run(warm, s)
        assert r.outcome == SUCCEEDED and read_outputs(r) == {f"{PARAM_OUT_DIR}/Output": "45"}
        assert zygote_of(s) == zygotes[key]  # forked from the zygote that imported pandas
        durations.append(r.finished_at - r.started_at)
    assert min(durations) < cold_import / 4, (durations, cold_import)


def test_modules_that_start_threads_at_import_run_cold(tmp_path, monkeypatch):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "chute_test_threadmod.py").write_text(
        "import threading, time\n"
        "threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
        "NAME = 'threaded'\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(lib), os.environ.get("PYTHONPATH", "")]))
    with PythonExecutor() as ex:
        s = step(tmp_path, use_threadmod)
        r = run(ex, s)
        assert r.outcome == SUCCEEDED and read_outputs(r) == {f"{PARAM_OUT_DIR}/Output": "threaded"}
        assert zygote_of(s) is None  # forking a process with a Python thread is unsafe
        assert ex.zygote_pids() == {}
        again = step(tmp_path, use_threadmod, name="again")  # and not retried each time
        assert run(ex, again).outcome == SUCCEEDED and zygote_of(again) is None


def test_warm_steps_can_be_turned_off(tmp_path, monkeypatch):
    monkeypatch.setenv("CHUTE_WARM_STEPS", "0")
    with PythonExecutor() as ex:
        s = step(tmp_path, greet, inputs={"name": "bo"})
        r = run(ex, s)
        assert r.outcome == SUCCEEDED and r.result == "hello bo"
        assert zygote_of(s) is None and ex.zygote_pids() == {}


def test_steps_survive_the_executor_going_away(tmp_path):
    s = step(tmp_path, private_tmp, inputs={"tag": "z"})
    ex = PythonExecutor()
    h = ex.launch(s)
    zygote = next(iter(ex.zygote_pids().values()))
    ex.close()  # as a controller that dies: the zygote exits, the step goes on
    assert not psutil.pid_exists(zygote)
    with PythonExecutor() as again:
        handle = again.reattach(h.step_dir)
        assert handle is not None
        r = wait(again, handle)
    assert r.outcome == SUCCEEDED and read_outputs(r) == {f"{PARAM_OUT_DIR}/Output": "mine-z"}


FLAKY_PIPELINE = """
from chute.dsl import component, pipeline


@component(retries=2, cache=False)
def flaky(counter: str) -> int:
    import os

    n = len(os.listdir(counter))
    open(os.path.join(counter, str(n)), "w").close()
    if n < 2:
        raise RuntimeError(f"attempt {n} fails")
    return n


@pipeline(name="flaky")
def flaky_pipeline(counter: str):
    flaky(counter=counter)
"""


def run_flaky_pipeline(chute_home, tmp_path):
    """Run FLAKY_PIPELINE with ``chute run``'s driver; its pods in start order, after the
    checks every executor must pass (two failed attempts, then a success, each counted
    once), and the first attempt's log text."""
    from rich.console import Console

    from chute.cli.run import run_pipeline

    src = tmp_path / "flaky.py"
    src.write_text(FLAKY_PIPELINE)
    counter = tmp_path / "counter"  # a host path under /tmp: re-shared into the view
    counter.mkdir()
    console = Console(file=open(os.devnull, "w"), width=120)  # noqa: SIM115
    row, nodes = run_pipeline(str(src), {"counter": str(counter)}, timeout=120,
                              console=console, out=console, live=False)
    assert row.phase == "Succeeded"
    pods = sorted((n for n in nodes if n.type == "Pod"), key=lambda n: n.started_at or 0)
    assert [n.phase for n in pods] == ["Failed", "Failed", "Succeeded"]
    assert sorted(os.listdir(counter)) == ["0", "1", "2"]
    log = next((chute_home / "logs").rglob(f"{pods[0].node_id}.log")).read_text()
    return pods, log


def test_engine_retries_a_failing_warm_step(chute_home, tmp_path):
    pods, log = run_flaky_pipeline(chute_home, tmp_path)
    for n in pods:
        assert json.loads((Path(n.step_dir) / "step.pid").read_text()).get("zygote")
    assert "RuntimeError: attempt 0 fails" in log


def test_chute_run_end_to_end_uses_warm_steps(chute_home):
    from rich.console import Console

    from chute.cli.run import run_pipeline

    console = Console(file=open(os.devnull, "w"), width=120)  # noqa: SIM115
    row, nodes = run_pipeline(str(REPO / "examples" / "diamond.py"), {"rows": "4"},
                              timeout=120, console=console, out=console, live=False)
    assert row.phase == "Succeeded"
    pods = [n for n in nodes if n.type == "Pod"]
    assert {n.display_name for n in pods} == {"load", "summarize", "scale", "report"}
    outs = {n.display_name: {p["name"]: p["value"] for p in (n.outputs or {}).get("parameters", [])}
            for n in pods}
    assert outs["summarize"]["Output"] == "1.5" and outs["scale"]["Output"] == "4"
    for n in pods:
        assert json.loads((Path(n.step_dir) / "step.pid").read_text()).get("zygote"), n.display_name
