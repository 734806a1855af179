"""Reused workers (PythonExecutor(reuse=True)): a step's semantics are a process step's.

Real worker processes run compiled SDK steps; where it matters the same step also runs
on the LocalExecutor (a cold ``python3 script``) or the zygote path for comparison.
"""

from __future__ import annotations

import itertools
import json
import signal
import time
from pathlib import Path

import psutil
import pytest

from chute.dsl import Dataset, Input, component
from chute.dsl.script import ART_IN_DIR, PARAM_OUT_DIR, build_source
from chute.executors.base import CANCELLED, FAILED, SUCCEEDED, TIMEOUT, LaunchSpec
from chute.executors.local import LocalExecutor
from chute.executors.python import PythonExecutor
from chute.executors.supervisor import DEADLINE_MESSAGE
from chute.executors.warm_worker import wants_reuse
from tests.fixtures.executor import wait
from tests.test_executors_python import (
    explode,
    greet,
    log_lines,
    read_outputs,
    run,
    spawn_and_sleep,
    step,
    with_packages,
)

OUT = f"{PARAM_OUT_DIR}/Output"


@component
def probe(tag: str) -> str:
    import json
    import os
    import sys

    main = sys.modules["__main__"]
    seen = {"pid": os.getpid(), "leak": os.environ.get("CHUTE_PROBE_LEAK"),
            "marker": hasattr(main, "chute_marker"), "argv": list(sys.argv),
            "cwd": os.getcwd(), "path0": sys.path[0], "tag": os.environ.get("CHUTE_INPUT_tag")}
    os.environ["CHUTE_PROBE_LEAK"] = tag  # none of this may reach the next step
    main.chute_marker = tag
    os.chdir("/")
    sys.argv.append("extra")
    sys.path.insert(0, "/nowhere")
    return json.dumps(seen)


@component
def chatty() -> None:
    import subprocess
    import sys

    print("one")
    subprocess.run(["sh", "-c", "echo two; echo oops >&2"], check=True)
    print("three")
    print("err line", file=sys.stderr)


@component
def read_input(data: Input[Dataset]) -> str:
    with open(data.path) as fh:
        return fh.read().upper()


@component
def exit_with(code: int) -> int:
    import os
    import signal
    import sys

    if code == -9:
        os.kill(os.getpid(), signal.SIGKILL)
    if code >= 100:
        os._exit(code - 100)
    if code:
        sys.exit(code)
    return os.getpid()


@component
def pid() -> int:
    import os

    return os.getpid()


@component
def leave_thread(daemon: bool) -> int:
    import os
    import threading
    import time

    def late():
        time.sleep(0.2)
        print("late")

    threading.Thread(target=late if not daemon else time.sleep,
                     args=() if not daemon else (30,), daemon=daemon).start()
    return os.getpid()


@component
def say(text: str) -> str:
    print(f"the secret is {text}")
    return text


@component
def nap(seconds: float) -> int:
    import os
    import time

    time.sleep(seconds)
    return os.getpid()


@component
def draw(seed: int) -> str:
    import json
    import os
    import random

    import numpy as np

    if seed:  # what a step may do: its draws are then what follows from the seed
        random.seed(seed)
        np.random.seed(seed)
    return json.dumps([random.getrandbits(64), int(np.random.randint(1 << 62)), os.getpid()])


@pytest.fixture(scope="module")
def reused():
    with PythonExecutor(reuse=True) as executor:
        yield executor


@pytest.fixture(scope="module")
def cold():
    with LocalExecutor() as executor:
        yield executor


def out(result) -> str:
    return read_outputs(result)[OUT]


def no_process_files(spec: LaunchSpec) -> bool:
    return not any((spec.step_dir / f).exists() for f in
                   ("launch.json", "supervisor.pid", "step.pid", "status.json"))


def gone(*pids: int, within: float = 0.0) -> bool:
    """Whether every one of ``pids`` has exited (a zombie has), waiting up to ``within``
    seconds for it: a retired worker exits on its own after its reply, and its exit (its
    mount namespace torn down) can take a while on a loaded machine."""
    end = time.monotonic() + within
    while True:
        left = [p for p in pids if psutil.pid_exists(p) and _status(p) != "zombie"]
        if not left or time.monotonic() >= end:
            return not left
        time.sleep(0.02)


def _status(pid: int) -> str:
    try:
        return psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return "zombie"


# ---------------------------------------------------------------- reuse and isolation


def test_consecutive_steps_share_a_worker_but_nothing_else(tmp_path):
    with PythonExecutor(reuse=True, pool_size=1) as ex:
        specs = [step(tmp_path, probe, name=n, inputs={"tag": n}) for n in ("one", "two")]
        first, second = (json.loads(out(run(ex, s))) for s in specs)
        assert first["pid"] == second["pid"]  # the same process ran both
        assert [first["pid"]] == next(iter(ex.pool.worker_pids().values()))
        for seen, s in ((first, specs[0]), (second, specs[1])):
            assert seen["leak"] is None and seen["marker"] is False  # fresh env, __main__
            assert seen["argv"] == [str(s.step_dir / "script")]
            assert seen["cwd"] == seen["path0"] == str(s.step_dir)
            assert seen["tag"] == s.env["CHUTE_INPUT_tag"]
            assert no_process_files(s)  # no supervisor, nothing to re-attach to
        assert ex.reattach(specs[0].step_dir) is None
    with PythonExecutor() as later:  # a controller started after this one died
        assert later.reattach(specs[1].step_dir) is None


def test_each_step_starts_from_fresh_random_state(tmp_path):
    import random

    import numpy as np

    with PythonExecutor(reuse=True, pool_size=1) as ex:
        runs = [run(ex, step(tmp_path, draw, name=f"d{i}", inputs={"seed": seed}))
                for i, seed in enumerate((42, 0, 0))]
        seeded, after, later = (json.loads(out(r)) for r in runs)
    assert seeded[2] == after[2] == later[2]  # one worker ran the three
    random.seed(42)
    np.random.seed(42)
    random.getrandbits(64), np.random.randint(1 << 62)  # the seeded step's draws
    follows = [random.getrandbits(64), int(np.random.randint(1 << 62))]
    for draws in (after, later):  # not the seeded step's sequence going on: reseeded
        assert draws[0] != follows[0] and draws[1] != follows[1]
    assert after[:2] != later[:2]


@component
def cycles(n: int) -> str:
    import gc
    import json
    import os

    count = gc.get_count()[0]  # the collector's young objects when the step started
    while gc.get_count()[0] < n:  # garbage only the collector frees (as a step's
        a: list = []  # __main__ is), up to n young objects: the collector not due yet
        a.append(a)
    return json.dumps({"pid": os.getpid(), "count": count,
                       "threshold": gc.get_threshold()[0]})


def test_the_collector_runs_between_steps_not_in_them(tmp_path):
    with PythonExecutor(reuse=True, pool_size=1) as ex:
        seen = [json.loads(out(run(ex, step(tmp_path, cycles, name=f"c{i}",
                                             inputs={"n": n}))))
                for i, n in enumerate((600, 0))]
    assert seen[0]["pid"] == seen[1]["pid"] and seen[1]["threshold"] == 700
    # cycles left by the first step: collected after its reply, before the second
    # (which would otherwise start with the collector about due, and pay for it)
    assert seen[1]["count"] < 100


def test_logs_result_and_outputs_as_a_process_step(reused, cold, tmp_path):
    for comp, inputs in ((greet, {"name": "ada"}), (chatty, {})):
        rs = step(tmp_path / "reused", comp, name=comp.name, inputs=inputs)
        cs = step(tmp_path / "cold", comp, name=comp.name, inputs=inputs)
        r, c = run(reused, rs), run(cold, cs)
        assert r.outcome == c.outcome == SUCCEEDED and r.exit_code == c.exit_code == 0
        assert r.result == c.result
        for stream in ("stdout", "stderr"):  # (two pipes: no order across the streams)
            assert [t for s, t in log_lines(rs) if s == stream] == [
                t for s, t in log_lines(cs) if s == stream]
        assert no_process_files(rs)
        for path, host in r.outputs.items():  # where a process step's outputs are
            assert host == str(rs.step_dir / "root" / path.lstrip("/"))
        assert read_outputs(r) == read_outputs(c)
    assert r.result == "one\ntwo\nthree"
    assert [t for s, t in log_lines(rs) if s == "stdout"] == ["one", "two", "three"]
    assert [t for s, t in log_lines(rs) if s == "stderr"] == ["oops", "err line"]


def test_inputs_are_placed_at_their_step_paths(reused, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("payload")
    s = step(tmp_path, read_input, input_files={f"{ART_IN_DIR}/data": str(src)})
    r = run(reused, s)
    assert r.outcome == SUCCEEDED and out(r) == "PAYLOAD"
    assert no_process_files(s)


def test_secrets_are_masked(reused, tmp_path):
    s = step(tmp_path, say, inputs={"text": "hunter2"}, secret_values=["hunter2"])
    r = run(reused, s)
    assert r.outcome == SUCCEEDED and r.result == "the secret is ***"
    assert out(r) == "***"  # no file of the step directory keeps it (the output included)
    assert ("stdout", "the secret is ***") in log_lines(s)
    assert "hunter2" not in s.log_path.read_text()


# ---------------------------------------------------------------- failures


def test_exit_codes_and_exceptions_fail_as_a_process_step(reused, cold, tmp_path):
    r = run(reused, step(tmp_path, exit_with, name="three", inputs={"code": 3}))
    assert (r.outcome, r.exit_code, r.message) == (FAILED, 3, "Error (exit code 3)")
    rs = step(tmp_path / "reused", explode, inputs={"n": 5})
    cs = step(tmp_path / "cold", explode, inputs={"n": 5})
    r, c = run(reused, rs), run(cold, cs)
    assert (r.outcome, r.exit_code, r.message) == (c.outcome, c.exit_code, c.message) == (
        FAILED, 1, "Error (exit code 1)")
    assert log_lines(rs) == log_lines(cs)  # the same traceback, frame for frame
    assert log_lines(rs)[-1] == ("stderr", "ValueError: boom 5")
    assert 'File "<step>/script"' in rs.log_path.read_text().replace(str(rs.step_dir), "<step>")


def test_a_failed_step_retires_its_worker(tmp_path):
    with PythonExecutor(reuse=True, pool_size=1) as ex:
        # (one module set, so one worker: pool_size is per module set, as zygotes are)
        before = out(run(ex, step(tmp_path, exit_with, name="before", inputs={"code": 0})))
        assert run(ex, step(tmp_path, exit_with, name="x", inputs={"code": 2})).exit_code == 2
        after = out(run(ex, step(tmp_path, exit_with, name="after", inputs={"code": 0})))
        assert before != after and gone(int(before), within=10)


@pytest.mark.parametrize(("code", "exit_code", "sig"), [(107, 7, None), (-9, 137, 9)])
def test_a_worker_that_dies_fails_its_step_and_is_replaced(reused, tmp_path, code, exit_code,
                                                           sig):
    r = run(reused, step(tmp_path, exit_with, name="dies", inputs={"code": code}))
    assert (r.outcome, r.exit_code, r.signal) == (FAILED, exit_code, sig)
    assert r.message == f"Error (exit code {exit_code})"
    again = run(reused, step(tmp_path, pid, name="again"))
    assert again.outcome == SUCCEEDED


@component
def imports_as_spawn_and_sleep(pidfile: str) -> str:
    import subprocess  # noqa: F401 - the same imports: the same workers
    import time  # noqa: F401

    return pidfile


def test_deadline_kills_the_worker_and_its_children(reused, tmp_path):
    pidfile = tmp_path / "child.pid"
    # a worker for these imports is up first: under load a worker's start alone can take
    # longer than the deadline below, which is meant for the step
    warm = step(tmp_path, imports_as_spawn_and_sleep, inputs={"pidfile": "x"}, name="warm")
    assert run(reused, warm).outcome == SUCCEEDED
    s = step(tmp_path, spawn_and_sleep, inputs={"pidfile": str(pidfile)},
             deadline=time.time() + 1.5, grace_seconds=0.3)
    t0 = time.monotonic()
    r = run(reused, s)
    assert (r.outcome, r.message) == (TIMEOUT, DEADLINE_MESSAGE)
    assert (r.exit_code, r.signal) == (128 + signal.SIGTERM, signal.SIGTERM)
    assert 1.0 < time.monotonic() - t0 < 8
    assert gone(int(pidfile.read_text()))
    assert run(reused, step(tmp_path, pid, name="after")).outcome == SUCCEEDED


def test_cancel_stops_a_running_and_a_queued_step(tmp_path):
    pidfile = tmp_path / "child.pid"
    with PythonExecutor(reuse=True, pool_size=1) as ex:
        s = step(tmp_path, spawn_and_sleep, inputs={"pidfile": str(pidfile)}, grace_seconds=0.3)
        h = ex.launch(s)
        queued = ex.launch(step(tmp_path, spawn_and_sleep, name="queued",  # waits for the
                                inputs={"pidfile": str(tmp_path / "no")}))  # one worker
        end = time.monotonic() + 20
        while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < end:
            time.sleep(0.01)
        worker = next(iter(ex.pool.worker_pids().values()))[0]
        ex.cancel(queued, "not needed")
        q = wait(ex, queued)
        assert (q.outcome, q.message, q.exit_code) == (CANCELLED, "not needed", None)
        assert ex.poll(h) is None  # the running one goes on meanwhile
        ex.cancel(h, "stop it")
        r = wait(ex, h)
        assert (r.outcome, r.message) == (CANCELLED, "stop it")
        assert gone(int(pidfile.read_text())) and gone(worker, within=10)


# ---------------------------------------------------------------- hygiene and the pool


def test_a_step_that_leaves_a_thread_is_followed_by_a_new_worker(tmp_path):
    with PythonExecutor(reuse=True, pool_size=1) as ex:
        for daemon in (True, False):
            s = step(tmp_path, leave_thread, name=f"t{daemon}", inputs={"daemon": str(daemon)})
            r = run(ex, s)
            assert r.outcome == SUCCEEDED
            nxt = out(run(ex, step(tmp_path, pid, name=f"next{daemon}")))
            assert nxt != out(r) and gone(int(out(r)), within=10)
        # a non-daemon thread is joined first, as at interpreter exit: its output is logged
        assert ("stdout", "late") in log_lines(s)


def test_workers_are_recycled_after_max_steps(tmp_path):
    with PythonExecutor(reuse=True, pool_size=1) as ex:
        pool = ex._pool()
        pool.max_steps = 2
        pids = [out(run(ex, step(tmp_path, pid, name=f"s{i}"))) for i in range(2)]
        # its second step started a replacement (beyond the pool's size): the first
        # worker goes on meanwhile, and leaves only once the replacement is up
        first = int(pids[0])
        assert len(pool.worker_pids()[next(iter(pool.worker_pids()))]) == 2
        pids.append(out(run(ex, step(tmp_path, pid, name="s2"))))
        assert pids[2] == pids[0]  # (the replacement takes ~0.1 s or more to come up)
        end = time.monotonic() + 60
        while len(pool.worker_pids()[key := next(iter(pool.worker_pids()))]) > 1 and \
                time.monotonic() < end:
            pool.pump()  # reads the replacement's "ready": the first worker, idle, leaves
            time.sleep(0.05)
        pids.append(out(run(ex, step(tmp_path, pid, name="s3"))))
        assert pids[3] != pids[0]
        assert pool.worker_pids()[key] == [int(pids[3])]
        assert gone(first, within=10)


def test_a_chain_never_waits_for_a_recycled_workers_replacement(tmp_path):
    """Past max_steps a worker runs on until its replacement is up: no step of a chain
    waits for a new worker's start (the same worker, then the new one; never a gap)."""
    with PythonExecutor(reuse=True, pool_size=1) as ex:
        pool = ex._pool()
        pool.max_steps = 3
        pids = []
        for i in range(60):
            handle = ex.launch(step(tmp_path, pid, name=f"s{i}"))
            # handed to a worker at once: never queued for one to come up
            assert pool._jobs[Path(handle.step_dir)].worker is not None, i
            pids.append(out(wait(ex, handle)))
            time.sleep(0.02)  # the replacements start meanwhile (~0.1-0.3 s)
        runs = [len(list(g)) for _, g in itertools.groupby(pids)]
        assert len(runs) >= 3, runs  # recycled, again and again
        assert all(n >= 3 for n in runs[:-1]), runs  # each after max_steps at least
        assert len(set(pids)) == len(runs)  # a worker that left never came back


def test_more_steps_than_workers_all_finish(tmp_path):
    with PythonExecutor(reuse=True, pool_size=2) as ex:
        specs = [step(tmp_path, nap, name=f"n{i}", inputs={"seconds": "1.0"}) for i in range(4)]
        handles = [ex.launch(s) for s in specs]
        results = [wait(ex, h) for h in handles]
        assert all(r.outcome == SUCCEEDED for r in results)
        assert len({out(r) for r in results}) <= 2  # two workers at most
        spans = [(r.started_at, r.finished_at) for r in results]

        def running_at(t):
            return sum(a <= t < b for a, b in spans)

        assert max(running_at(a) for a, _ in spans) == 2  # two at a time, never more


def test_routing_to_reused_workers(tmp_path, monkeypatch):
    source = build_source(pid)
    asking = build_source(pid, reuse_worker=True)  # as @component(reuse_worker=True) makes it
    assert asking != source and wants_reuse(asking) and not wants_reuse(source)
    packages = build_source(with_packages, reuse_worker=True)
    assert '"reuse_worker": true' in packages and not wants_reuse(packages)
    with PythonExecutor() as ex:  # reuse=None: the step's config decides
        a = step(tmp_path, pid, name="asks")
        a = LaunchSpec(**{**a.__dict__, "script_source": asking})
        b = step(tmp_path, pid, name="default")
        assert run(ex, a).outcome == run(ex, b).outcome == SUCCEEDED
        assert no_process_files(a) and (b.step_dir / "step.pid").exists()
    with PythonExecutor(reuse=True) as ex:  # a private path outside /tmp: the fork path
        c = step(tmp_path, pid, name="elsewhere")
        c = LaunchSpec(**{**c.__dict__, "output_paths": [OUT, "/outside/x"]})
        assert run(ex, c).outcome == SUCCEEDED and (c.step_dir / "step.pid").exists()
    monkeypatch.setenv("CHUTE_WARM_STEPS", "reuse")
    with PythonExecutor() as ex:
        d = step(tmp_path, pid, name="env")
        assert run(ex, d).outcome == SUCCEEDED and no_process_files(d)


# ---------------------------------------------------------------- through the engine


def _run_pipeline(home: Path, reuse: bool) -> dict[str, dict[str, str]]:
    from chute.config import load_settings
    from chute.dsl.compiler import compile_pipeline
    from chute.dsl.loader import load_pipeline
    from chute.engine.controller import Controller
    from chute.engine.submit import submit
    from chute.spec.loader import load_resource
    from chute.store import queries as q
    from chute.store.db import open_store
    from tests.conftest import REPO

    settings = load_settings({"CHUTE_HOME": str(home)}).ensure()
    store = open_store(settings)
    doc = compile_pipeline(load_pipeline(str(REPO / "examples" / "diamond.py")))
    row = submit(store, load_resource(doc), {"rows": "5"})
    executor = PythonExecutor(reuse=reuse).start()
    ctl = Controller(store, settings, executor)
    try:
        ctl.run_until_done([row.uid], timeout=120)
    finally:
        ctl.close()
        executor.close()
    with store.read() as s:
        assert q.get_workflow(s, row.uid).phase == "Succeeded"
        pods = [n for n in q.nodes_of(s, row.uid) if n.type == "Pod"]
        for n in pods:  # really reused (no supervisor files), or really forked
            assert (Path(n.step_dir) / "step.pid").exists() != reuse
        outs = {n.display_name: {p["name"]: p["value"]
                                 for p in (n.outputs or {}).get("parameters", [])}
                for n in pods}
    store.dispose()
    return outs


def test_a_pipeline_through_the_engine_gives_the_fork_paths_outputs(tmp_path):
    reused_outs = _run_pipeline(tmp_path / "reused", True)
    assert reused_outs == _run_pipeline(tmp_path / "forked", False)
    assert set(reused_outs) == {"load", "summarize", "scale", "report"}
    assert reused_outs["scale"]["Output"] == "5"


@component
def close_stdout() -> int:
    import os

    os.close(1)
    return os.getpid()


def test_a_step_that_closes_its_stdout_fd_is_followed_by_a_new_worker(tmp_path):
    with PythonExecutor(reuse=True, pool_size=1) as ex:
        first = run(ex, step(tmp_path, close_stdout, name="closes"))
        assert first.outcome == SUCCEEDED
        second = run(ex, step(tmp_path, close_stdout, name="again"))
        assert second.outcome == SUCCEEDED and out(second) != out(first)


CONTROLLER = """
import sys, time
from pathlib import Path
from chute.executors.python import PythonExecutor
from tests.test_executors_python import spawn_and_sleep, step

ex = PythonExecutor(reuse=True)
ex.launch(step(Path(sys.argv[1]), spawn_and_sleep, inputs={"pidfile": sys.argv[2]}))
print([p for ps in ex.pool.worker_pids().values() for p in ps][0], flush=True)
time.sleep(120)
"""


def test_workers_and_their_steps_die_with_the_controller(tmp_path):
    import subprocess
    import sys

    from tests.conftest import REPO

    pidfile = tmp_path / "child.pid"
    ctl = subprocess.Popen([sys.executable, "-c", CONTROLLER, str(tmp_path), str(pidfile)],
                           stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        worker = int(ctl.stdout.readline())
        end = time.monotonic() + 20
        while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < end:
            time.sleep(0.01)
        child = int(pidfile.read_text())
        assert not gone(worker) and not gone(child)
        ctl.kill()  # no close(), no goodbye: the worker's stdin just closes
        ctl.wait()
        assert gone(worker, child, within=5)
    finally:
        ctl.kill()
        ctl.wait()
    with PythonExecutor() as later:  # nothing to re-attach to: the engine runs it again
        assert later.reattach(tmp_path / "s") is None


def test_a_relaunch_in_a_lost_attempts_directory_starts_afresh(reused, tmp_path):
    s = step(tmp_path, pid, name="again")
    stale = s.step_dir / "root" / "tmp" / "stale"
    stale.parent.mkdir(parents=True)
    stale.write_text("from the attempt lost with its controller")
    s = LaunchSpec(**{**s.__dict__, "output_paths": [OUT, "/tmp/stale"]})
    r = run(reused, s)
    assert r.outcome == SUCCEEDED and set(r.outputs) == {OUT} and not stale.exists()


@pytest.mark.heavy
def test_many_steps_through_recycled_workers(tmp_path):
    n = 3000
    source = build_source(pid)
    with PythonExecutor(reuse=True, pool_size=2) as ex:
        ex._pool().max_steps = 500
        t0 = time.perf_counter()
        handles = [ex.launch(LaunchSpec(
            workflow_uid="wf", node_id=f"s{i}", attempt=0, step_dir=tmp_path / f"s{i}",
            log_path=tmp_path / "logs" / f"s{i}.log", argv=["python3"],
            script_source=source, output_paths=[OUT])) for i in range(n)]
        pending = {h.step_dir: h for h in handles}
        results = []
        end = time.monotonic() + 300
        while pending and time.monotonic() < end:
            ex.wait(1.0)
            for d in ex.finished():
                r = ex.poll(pending[d]) if d in pending else None
                if r is not None:
                    results.append(r)
                    del pending[d]
        wall = time.perf_counter() - t0
        assert not pending
    assert all(r.outcome == SUCCEEDED for r in results)
    pids = {out(r) for r in results}
    # recycled: replacements took over (each spent worker goes on until its own is up,
    # so how many ran depends on how fast they came up; 2 would mean none did)
    assert len(pids) >= 3, len(pids)
    print(f"{n} steps, pool of 2: {1e3 * wall / n:.3f} ms/step wall, {len(pids)} workers")


def test_the_engine_retries_a_failing_reused_step(chute_home, tmp_path, monkeypatch):
    from tests.test_executors_python import run_flaky_pipeline

    monkeypatch.setenv("CHUTE_WARM_STEPS", "reuse")  # what `chute run --reuse-workers` sets
    pods, log = run_flaky_pipeline(chute_home, tmp_path)
    assert not any((Path(n.step_dir) / "step.pid").exists() for n in pods)  # all reused
    assert "RuntimeError: attempt 0 fails" in log


def test_steps_go_to_the_fork_path_when_no_worker_comes_up(tmp_path):
    with PythonExecutor(reuse=True) as ex:
        ex._pool().python = "/bin/false"  # exits at once: as a worker that cannot start
        s = step(tmp_path, pid, name="fallback")
        r = run(ex, s)
        assert r.outcome == SUCCEEDED and (s.step_dir / "step.pid").exists()  # forked
        again = step(tmp_path, pid, name="again")  # and not tried again for each step
        assert run(ex, again).outcome == SUCCEEDED and (again.step_dir / "step.pid").exists()
        assert all(pids == [] for pids in ex.pool.worker_pids().values())
