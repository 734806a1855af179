"""LocalExecutor: launch, poll, results, outputs, private /tmp, survival, reattach."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import psutil
import pytest

from chute.executors import sandbox
from chute.executors.base import CANCELLED, ERROR, FAILED, SUCCEEDED, LaunchSpec
from chute.executors.local import LocalExecutor

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ex():
    with LocalExecutor() as executor:
        yield executor


def spec(tmp_path: Path, argv, name="s", **kw) -> LaunchSpec:
    return LaunchSpec(
        workflow_uid="wf",
        node_id=name,
        attempt=0,
        step_dir=tmp_path / name,
        log_path=tmp_path / "logs" / f"{name}.log",
        argv=list(argv),
        **kw,
    )


def sup_pid(step_dir: Path, timeout=10.0) -> int:
    """The supervisor's pid, once it has written supervisor.pid."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            return json.loads((step_dir / "supervisor.pid").read_text())["pid"]
        except (FileNotFoundError, ValueError):
            time.sleep(0.002)
    raise AssertionError(f"no supervisor.pid in {step_dir}")


def wait(ex, handle, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r = ex.poll(handle)
        if r is not None:
            return r
        time.sleep(0.005)
    raise AssertionError(f"no result within {timeout}s for {handle}")


def run(ex, tmp_path, argv, **kw):
    s = spec(tmp_path, argv, **kw)
    return wait(ex, ex.launch(s)), s


def log_lines(path: Path) -> list[tuple[str, str, str]]:
    out = []
    for line in path.read_text().splitlines():
        ts, stream, text = (line.split(" ", 2) + [""])[:3]
        out.append((ts, stream, text))
    return out


def test_success_result_and_files(ex, tmp_path):
    r, s = run(ex, tmp_path, ["sh", "-c", "echo hello; echo world"])
    assert r.outcome == SUCCEEDED and r.exit_code == 0 and r.signal is None
    assert r.result == "hello\nworld"  # Argo trims one trailing newline
    assert r.started_at and r.finished_at and r.finished_at >= r.started_at
    for f in ("launch.json", "supervisor.pid", "status.json", "stdout"):
        assert (s.step_dir / f).exists(), f
    assert (s.step_dir / "stdout").read_text() == "hello\nworld\n"
    assert json.loads((s.step_dir / "status.json").read_text())["outcome"] == SUCCEEDED


def test_failure_message_is_argos(ex, tmp_path):
    r, _ = run(ex, tmp_path, ["sh", "-c", "echo oops >&2; exit 3"])
    assert (r.outcome, r.exit_code, r.message) == (FAILED, 3, "Error (exit code 3)")
    assert r.result == ""  # stderr is not part of outputs.result


def test_logs_have_timestamps_streams_and_order(ex, tmp_path):
    script = "for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.02; done"
    r, s = run(ex, tmp_path, ["sh", "-c", script])
    assert r.outcome == SUCCEEDED
    lines = log_lines(s.log_path)
    assert [(st, t) for _, st, t in lines] == [
        (st, f"{p}{i}") for i in (1, 2, 3) for st, p in (("stdout", "out"), ("stderr", "err"))
    ]
    stamps = [ts for ts, _, _ in lines]
    for ts in stamps:  # RFC 3339, UTC
        assert ts.endswith("Z") and ts[10] == "T"
        time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")
    assert stamps == sorted(stamps)


def test_line_without_trailing_newline_is_logged(ex, tmp_path):
    r, s = run(ex, tmp_path, ["sh", "-c", "printf 'a\\nno-newline'"])
    assert [t for _, _, t in log_lines(s.log_path)] == ["a", "no-newline"]
    assert r.result == "a\nno-newline"


def test_script_source_and_python_maps_to_running_interpreter(ex, tmp_path):
    src = "import sys\nprint(sys.executable)\n"
    r, _ = run(ex, tmp_path, ["python"], script_source=src)
    assert r.outcome == SUCCEEDED, r
    assert r.result == sys.executable


def test_env_working_dir_and_inherited_environment(ex, tmp_path, monkeypatch):
    monkeypatch.setenv("FROM_CONTROLLER", "yes")
    wd = tmp_path / "wd"
    r, _ = run(
        ex,
        tmp_path,
        ["sh", "-c", 'echo "$A $FROM_CONTROLLER $(pwd)"'],
        env={"A": "1"},
        working_dir=str(wd),
    )
    assert r.result == f"1 yes {wd}"


def test_command_not_found_is_an_error(ex, tmp_path):
    r, s = run(ex, tmp_path, ["no-such-command-xyz"])
    assert r.outcome == ERROR and r.exit_code is None
    assert "no-such-command-xyz" in r.message and "not found" in r.message
    assert "no-such-command-xyz" in s.log_path.read_text()


def test_stdout_result_keeps_last_256k(ex, tmp_path):
    script = "import sys; sys.stdout.write('a' * 300000 + 'END\\n')"
    r, _ = run(ex, tmp_path, ["python", "-c", script])
    assert len(r.result) == 256 * 1024 and r.result.endswith("END")


def test_launch_twice_into_one_step_dir_is_refused(ex, tmp_path):
    from chute.errors import ExecutionError

    s = spec(tmp_path, ["true"])
    wait(ex, ex.launch(s))
    with pytest.raises(ExecutionError):
        ex.launch(s)


def test_secret_values_are_masked(ex, tmp_path):
    secret = "s3cr3t-T0ken"
    r, s = run(
        ex,
        tmp_path,
        ["sh", "-c", 'echo "token=$T"; echo "err $T" >&2; exit 2'],
        env={"T": secret},
        secret_values=[secret],
    )
    text = s.log_path.read_text()
    assert secret not in text and "token=***" in text and "err ***" in text
    assert r.result == "token=***"
    assert secret not in (s.step_dir / "stdout").read_text()
    assert secret not in (s.step_dir / "status.json").read_text()
    # launch.json holds the environment (and so the secret) while the step runs
    assert (s.step_dir / "launch.json").stat().st_mode & 0o077 == 0


# ------------------------------------------------------------------ outputs and private view


def test_outputs_are_collected_and_missing_ones_absent(ex, tmp_path):
    r, s = run(
        ex,
        tmp_path,
        ["sh", "-c", "mkdir -p /tmp/d && echo v > /tmp/out.txt && echo f > /tmp/d/f"],
        private_paths=["/tmp/out.txt", "/tmp/d", "/tmp/missing"],
        output_paths=["/tmp/out.txt", "/tmp/d", "/tmp/missing"],
    )
    assert r.outcome == SUCCEEDED, r
    assert set(r.outputs) == {"/tmp/out.txt", "/tmp/d"}
    assert Path(r.outputs["/tmp/out.txt"]).read_text() == "v\n"
    assert Path(r.outputs["/tmp/d"], "f").read_text() == "f\n"
    assert Path(r.outputs["/tmp/out.txt"]).is_relative_to(s.step_dir)


@pytest.mark.skipif(not sandbox.available(), reason="no mount namespaces here")
def test_two_concurrent_steps_get_their_own_tmp(ex, tmp_path):
    specs = [
        spec(
            tmp_path,
            ["sh", "-c", f"echo {v} > /tmp/out.txt; sleep 0.3; cat /tmp/out.txt"],
            name=f"s{v}",
            private_paths=["/tmp/out.txt"],
            output_paths=["/tmp/out.txt"],
        )
        for v in ("one", "two")
    ]
    handles = [ex.launch(s) for s in specs]
    results = [wait(ex, h) for h in handles]
    for v, r in zip(("one", "two"), results, strict=True):
        assert r.outcome == SUCCEEDED and r.result == v
        assert Path(r.outputs["/tmp/out.txt"]).read_text() == f"{v}\n"
    assert not Path("/tmp/out.txt").exists() or Path("/tmp/out.txt").read_text() not in (
        "one\n",
        "two\n",
    )


@pytest.mark.skipif(not sandbox.available(), reason="no mount namespaces here")
def test_private_dirs_outside_tmp_and_input_files(ex, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("input-data")
    r, _s = run(
        ex,
        tmp_path,
        ["sh", "-c", "mkdir -p /workspace && cat /argo/inputs/in.txt > /workspace/out"],
        input_files={"/argo/inputs/in.txt": str(src)},
        private_paths=["/workspace/out"],
        output_paths=["/workspace/out"],
    )
    assert r.outcome == SUCCEEDED, r
    assert Path(r.outputs["/workspace/out"]).read_text() == "input-data"
    assert not Path("/workspace").exists() and not Path("/argo").exists()


@pytest.mark.skipif(not sandbox.available(), reason="no mount namespaces here")
def test_host_paths_given_to_a_private_step_stay_visible(ex, tmp_path):
    # tmp_path is under /tmp, which the step sees privately; paths it is handed stay visible
    tool = tmp_path / "tool.sh"
    tool.write_text('#!/bin/sh\necho tool-ran > /tmp/out.txt\ncat "$DATA"\n')
    tool.chmod(0o755)
    data = tmp_path / "data.txt"
    data.write_text("data")
    r, _ = run(
        ex,
        tmp_path,
        [str(tool)],
        env={"DATA": str(data)},
        private_paths=["/tmp/out.txt"],
        output_paths=["/tmp/out.txt"],
    )
    assert r.outcome == SUCCEEDED, r
    assert r.result == "data"
    assert Path(r.outputs["/tmp/out.txt"]).read_text() == "tool-ran\n"


# ------------------------------------------------------------------ survival and reattach


LAUNCHER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from chute.executors.base import LaunchSpec
    from chute.executors.local import LocalExecutor
    d = Path(sys.argv[1])
    ex = LocalExecutor()
    h = ex.launch(LaunchSpec("wf", "n", 0, d / "step", d / "step.log",
                             ["sh", "-c", "sleep 1; echo survived"]))
    print("launched", flush=True)
    time.sleep(60)
    """
)


def test_supervisor_survives_death_of_its_launcher(ex, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(tmp_path)],
        stdout=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout.readline().strip() == b"launched"
    pid = sup_pid(tmp_path / "step")
    proc.kill()  # SIGKILL the "controller" while the step runs
    proc.wait()
    assert psutil.pid_exists(pid)
    handle = ex.reattach(tmp_path / "step")
    assert handle is not None
    assert ex.poll(handle) is None  # still running: never a false failure
    r = wait(ex, handle)
    assert r.outcome == SUCCEEDED and r.result == "survived"


def test_supervisor_lost_is_an_error_and_kills_the_step(ex, tmp_path):
    s = spec(tmp_path, ["sh", "-c", "sleep 30"])
    h = ex.launch(s)
    deadline = time.monotonic() + 5
    while not (s.step_dir / "step.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    step_pid = json.loads((s.step_dir / "step.pid").read_text())["pid"]
    os.kill(sup_pid(s.step_dir), signal.SIGKILL)
    r = wait(ex, h)
    assert r.outcome == ERROR and r.message == "supervisor lost"
    assert ex.poll(h) == r  # recorded, so every later poll agrees
    time.sleep(0.05)
    assert not psutil.pid_exists(step_pid) or psutil.Process(step_pid).status() == "zombie"


def test_reattach_states(ex, tmp_path):
    assert ex.reattach(tmp_path / "nothing") is None
    never = tmp_path / "never"
    never.mkdir()
    (never / "launch.json").write_text("{}")
    os.utime(never / "launch.json", (time.time() - 60, time.time() - 60))
    assert ex.reattach(never) is None  # launch.json but no supervisor: safe to relaunch
    r, s = run(ex, tmp_path, ["true"])
    h = ex.reattach(s.step_dir)
    assert h is not None and ex.poll(h) == r


def test_fork_server_is_restarted_when_it_dies(ex, tmp_path):
    r1, _ = run(ex, tmp_path, ["true"], name="a")
    ex._server.proc.kill()
    ex._server.proc.wait()
    r2, _ = run(ex, tmp_path, ["true"], name="b")
    assert r1.outcome == r2.outcome == SUCCEEDED


def test_cancel(ex, tmp_path):
    s = spec(tmp_path, ["sh", "-c", "echo started; sleep 30"], grace_seconds=0.5)
    h = ex.launch(s)
    while "started" not in (s.log_path.read_text() if s.log_path.exists() else ""):
        time.sleep(0.005)
    t0 = time.monotonic()
    ex.cancel(h, "stopped by user")
    r = wait(ex, h)
    assert time.monotonic() - t0 < 2.0
    assert r.outcome == CANCELLED and r.message == "stopped by user"
    assert r.signal == signal.SIGTERM and r.exit_code == 143


def test_stopped_supervisor_is_not_a_false_failure(ex, tmp_path):
    """R-5b: a supervisor that cannot run for a while is alive, not lost."""
    s = spec(tmp_path, ["sh", "-c", "sleep 0.5; echo done"])
    h = ex.launch(s)
    deadline = time.monotonic() + 5
    while not (s.step_dir / "step.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    pid = sup_pid(s.step_dir)
    os.kill(pid, signal.SIGSTOP)
    try:
        for _ in range(20):  # 1 s: the step ends meanwhile, the supervisor cannot record it
            assert ex.poll(h) is None
            time.sleep(0.05)
    finally:
        os.kill(pid, signal.SIGCONT)
    r = wait(ex, h)
    assert r.outcome == SUCCEEDED and r.result == "done"


def test_result_of_a_step_that_ended_while_no_controller_watched(ex, tmp_path):
    """R-3: the result is adopted from status.json, the step does not run again."""
    s = spec(tmp_path, ["sh", "-c", 'echo ran >> "$1"', "sh", str(tmp_path / "count")])
    with LocalExecutor() as first:
        first.launch(s)
    time.sleep(0.5)  # the step ends while nobody polls
    h = ex.reattach(s.step_dir)
    r = ex.poll(h)
    assert r is not None and r.outcome == SUCCEEDED
    assert (tmp_path / "count").read_text() == "ran\n"


# ------------------------------------------------------------------ argosay (tests/tools)

TOOLS = REPO / "tests" / "tools"


@pytest.mark.parametrize(
    ("args", "outcome", "result"),
    [
        ([], SUCCEEDED, "hello argo"),
        (["echo", "hi there"], SUCCEEDED, "hi there"),
        (["sleep", "50ms"], SUCCEEDED, ""),
        (["sleep", "0.05"], SUCCEEDED, ""),
        (["exit", "3"], FAILED, ""),
        (["nope"], FAILED, ""),
    ],
)
def test_argosay(ex, tmp_path, monkeypatch, args, outcome, result):
    monkeypatch.setenv("PATH", f"{TOOLS}{os.pathsep}{os.environ['PATH']}")
    r, _ = run(ex, tmp_path, ["argosay", *args])
    assert (r.outcome, r.result) == (outcome, result)


def test_argosay_files(ex, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{TOOLS}{os.pathsep}{os.environ['PATH']}")
    f = tmp_path / "deep" / "dir" / "out.txt"
    r, _ = run(ex, tmp_path, ["argosay", "echo", "real-value", str(f)], name="w")
    assert r.outcome == SUCCEEDED and f.read_text() == "real-value"
    r, _ = run(ex, tmp_path, ["argosay", "cat", str(f)], name="c")
    assert r.result == "real-value"
    r, _ = run(ex, tmp_path, ["argosay", "assert_contains", str(f), "al-va"], name="a1")
    assert r.outcome == SUCCEEDED
    r, s = run(ex, tmp_path, ["argosay", "assert_contains", str(f), "zzz"], name="a2")
    assert r.outcome == FAILED and "zzz" in s.log_path.read_text()


@pytest.mark.skipif(not sandbox.available(), reason="no mount namespaces here")
def test_host_paths_inside_a_shell_string_stay_visible(ex, tmp_path):
    count = tmp_path / "sub" / "count"  # does not exist yet: reached through tmp_path
    script = f"echo ran >> {count.parent}/count && echo mine > /tmp/out.txt && cat /tmp/out.txt"
    (tmp_path / "sub").mkdir()
    r, _ = run(
        ex,
        tmp_path,
        ["sh", "-c", script],
        private_paths=["/tmp/out.txt"],
        output_paths=["/tmp/out.txt"],
    )
    assert r.outcome == SUCCEEDED and r.result == "mine"
    assert count.read_text() == "ran\n"
    assert Path(r.outputs["/tmp/out.txt"]).read_text() == "mine\n"


# ------------------------------------------------------------------ reused supervisor processes


def test_supervisor_processes_are_reused(ex, tmp_path):
    pids = set()
    for i in range(4):
        s = spec(tmp_path, ["true"], name=f"r{i}")
        h = ex.launch(s)
        wait(ex, h)
        pids.add(sup_pid(s.step_dir))
        time.sleep(0.02)  # let the worker report itself idle
    assert len(pids) < 4


def test_late_cancel_signal_does_not_touch_the_next_step(ex, tmp_path):
    from chute.executors.supervisor import CANCEL_SIGNAL

    a = spec(tmp_path, ["true"], name="a")
    ha = ex.launch(a)
    ra = wait(ex, ha)
    time.sleep(0.02)
    # the race: a cancel meant for a, arriving after a ended, when the process moved on
    (a.step_dir / "cancel.json").write_text('{"reason": "late"}')
    os.kill(sup_pid(a.step_dir), CANCEL_SIGNAL)
    results = [
        wait(ex, ex.launch(spec(tmp_path, ["sleep", "0.2"], name=f"b{i}"))) for i in range(3)
    ]
    assert all(r.outcome == SUCCEEDED for r in results)
    assert ex.poll(ha) == ra


def test_sigterm_to_a_busy_supervisor_cancels_and_retires_it(ex, tmp_path):
    s = spec(tmp_path, ["sh", "-c", "echo up; sleep 30"], grace_seconds=0.2)
    h = ex.launch(s)
    while "up" not in (s.log_path.read_text() if s.log_path.exists() else ""):
        time.sleep(0.005)
    pid = sup_pid(s.step_dir)
    os.kill(pid, signal.SIGTERM)
    r = wait(ex, h)
    assert r.outcome == CANCELLED and r.message == "supervisor terminated"
    deadline = time.monotonic() + 5
    while _alive(pid):
        assert time.monotonic() < deadline, "a terminated supervisor must exit"
        time.sleep(0.01)
    r2, _ = run(ex, tmp_path, ["true"], name="after")
    assert r2.outcome == SUCCEEDED


def test_idle_supervisors_exit_with_the_fork_server(tmp_path):
    with LocalExecutor() as own:
        h = own.launch(spec(tmp_path, ["true"]))
        wait(own, h)
        worker = sup_pid(tmp_path / "s")
        server = own._server.proc.pid
    # closing the executor ends the fork server; its idle workers follow
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in (worker, server)):
        assert time.monotonic() < deadline, "fork server or idle worker left behind"
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.skipif(not sandbox.available(), reason="no mount namespaces here")
def test_private_tmp_holds_only_what_the_step_wrote(ex, tmp_path):
    # the mount points for host paths bound back in are removed after the step
    r, s = run(
        ex,
        tmp_path,
        ["sh", "-c", "echo x > /tmp/out.txt"],
        private_paths=["/tmp/out.txt"],
        output_paths=["/tmp/out.txt"],
    )
    assert r.outcome == SUCCEEDED
    deadline = time.monotonic() + 5  # removed just after the result is written
    while sorted(os.listdir(s.step_dir / "root" / "tmp")) != ["out.txt"]:
        assert time.monotonic() < deadline, os.listdir(s.step_dir / "root" / "tmp")
        time.sleep(0.01)
    assert sorted(os.listdir(s.step_dir / "root")) == ["tmp"]


@pytest.mark.skipif(not sandbox.available(), reason="no mount namespaces here")
def test_a_top_level_output_file(ex, tmp_path):
    # Argo's expression-tag example writes its output parameter to the file /output
    r, _ = run(
        ex,
        tmp_path,
        ["sh", "-c", "echo hello > /output"],
        private_paths=["/output"],
        output_paths=["/output"],
    )
    assert r.outcome == SUCCEEDED, r
    assert Path(r.outputs["/output"]).read_text() == "hello\n"
    assert not Path("/output").exists()
    r, _ = run(
        ex, tmp_path, ["true"], name="t2", private_paths=["/output"], output_paths=["/output"]
    )
    assert r.outcome == SUCCEEDED and r.outputs == {}  # never written: absent


def test_script_file_is_executable(ex, tmp_path):
    # `command: [sh, -c]` with a script runs `sh -c <script path>`: the file itself
    r, _ = run(ex, tmp_path, ["sh", "-c"], script_source="#!/bin/sh\necho from-script\n")
    assert (r.outcome, r.result) == (SUCCEEDED, "from-script")


def test_plan_without_namespaces_shares_paths_and_snapshots_outputs(tmp_path):
    out = tmp_path / "o.txt"
    plan = sandbox.plan_for(
        {"step_dir": str(tmp_path / "step"), "output_paths": [str(out), str(tmp_path / "no")]},
        {},
        ["true"],
        enabled=False,
    )
    assert not plan.enabled and plan.host_path(str(out)) == out
    out.write_text("v")
    got = plan.collect([str(out), str(tmp_path / "no")])
    assert list(got) == [str(out)]
    out.write_text("changed later by someone else")
    assert Path(got[str(out)]).read_text() == "v"  # a snapshot under step_dir/root


@pytest.mark.skipif(not sandbox.available(), reason="no mount namespaces here")
def test_script_in_a_private_view_with_a_private_working_dir(ex, tmp_path):
    src = "import os\nopen('/tmp/out.txt', 'w').write(os.getcwd())\nprint('ok')\n"
    r, _ = run(
        ex,
        tmp_path,
        ["python"],
        script_source=src,
        working_dir="/tmp/work",
        private_paths=["/tmp/out.txt"],
        output_paths=["/tmp/out.txt"],
    )
    assert (r.outcome, r.result) == (SUCCEEDED, "ok"), r
    assert Path(r.outputs["/tmp/out.txt"]).read_text() == "/tmp/work"
    assert not Path("/tmp/work").exists()


@pytest.mark.skipif(not sandbox.available(), reason="no mount namespaces here")
def test_private_view_behaves_like_an_image(ex, tmp_path):
    # the shapes of Argo's conditional-artifacts, global-outputs and map-reduce examples
    art = tmp_path / "art"
    art.write_text("input at /art")
    src = (
        "import os\n"
        "open('result.txt', 'w').write('relative')\n"  # cwd is / as in an image
        "os.mkdir('/mnt/out')\n"  # /mnt exists, /mnt/out does not
        "open('/mnt/out/part.json', 'w').write(open('/art').read())\n"
    )
    r, _ = run(
        ex,
        tmp_path,
        ["python"],
        script_source=src,
        input_files={"/art": str(art)},
        output_paths=["/result.txt", "/mnt/out/part.json"],
    )
    assert r.outcome == SUCCEEDED, r
    assert Path(r.outputs["/result.txt"]).read_text() == "relative"
    assert Path(r.outputs["/mnt/out/part.json"]).read_text() == "input at /art"


@pytest.mark.skipif(not sandbox.available(), reason="no mount namespaces here")
def test_output_paths_are_not_pre_created(ex, tmp_path):
    # as in Argo's container (its emissary copies outputs out after the step): the step
    # finds no /mnt/out, /output or /workspace, makes them itself and may replace a file
    script = (
        "for p in /mnt/out /output /workspace; do [ ! -e $p ] || { echo has $p; exit 3; }; done"
        " && [ -d /mnt ] && [ -d /tmp ]"
        " && mkdir /mnt/out /workspace && echo m > /mnt/out/part.json"
        " && echo w > /workspace/w.txt"
        " && echo first > /output.tmp && mv /output.tmp /output"
    )
    outs = ["/mnt/out/part.json", "/output", "/workspace/w.txt", "/mnt/never"]
    r, s = run(ex, tmp_path, ["sh", "-c", script], output_paths=outs)
    assert r.outcome == SUCCEEDED, (r, (s.log_path.read_text()))
    assert set(r.outputs) == set(outs) - {"/mnt/never"}
    assert Path(r.outputs["/output"]).read_text() == "first\n"
    assert Path(r.outputs["/mnt/out/part.json"]).read_text() == "m\n"
    assert Path(r.outputs["/workspace/w.txt"]).read_text() == "w\n"
    assert not os.path.lexists("/output") and not os.path.lexists("/workspace")
    assert not os.path.lexists("/mnt/out")
    # an output that is a directory at a top-level path the step makes itself
    r, _ = run(ex, tmp_path, ["sh", "-c", "mkdir /output && echo f > /output/f"], name="d",
               output_paths=["/output"])
    assert r.outcome == SUCCEEDED, r
    assert Path(r.outputs["/output"], "f").read_text() == "f\n"


@pytest.mark.skipif(not sandbox.available(), reason="no mount namespaces here")
@pytest.mark.parametrize("light", [True, False])
def test_empty_dir_volume_is_a_private_mount(ex, tmp_path, light):
    # Argo's volumes-emptydir greps /proc/mounts for the mount path; two steps at once
    # each get their own empty directory, and what they write there can be an output
    outs = ["/mnt/vol/x"] + ([] if light else ["/result.txt"])
    script = ("grep -q ' /mnt/vol ' /proc/mounts && [ -z \"$(ls -A /mnt/vol)\" ]"
              " && echo $0 > /mnt/vol/x && sleep 0.2 && cat /mnt/vol/x")
    handles = [ex.launch(spec(tmp_path, ["sh", "-c", script, f"v{i}"], name=f"v{i}",
                              volume_mounts=["/mnt/vol"], output_paths=outs))
               for i in range(2)]
    for i, h in enumerate(handles):
        r = wait(ex, h)
        assert (r.outcome, r.result) == (SUCCEEDED, f"v{i}"), r
        assert Path(r.outputs["/mnt/vol/x"]).read_text() == f"v{i}\n"
    assert not os.path.lexists("/mnt/vol")


# ------------------------------------------------------------------ pipelined launches


def test_a_burst_of_launches_does_not_wait_for_supervisors(ex, tmp_path):
    t0 = time.monotonic()
    handles = [
        ex.launch(spec(tmp_path, ["sh", "-c", f"echo {i}"], name=f"b{i}")) for i in range(40)
    ]
    launched = time.monotonic() - t0
    results = [wait(ex, h) for h in handles]
    assert [r.result for r in results] == [str(i) for i in range(40)]
    assert all(r.outcome == SUCCEEDED for r in results)
    assert launched < 2.0, launched  # a few ms each at most, even on a busy machine


def test_poll_of_an_attempt_whose_supervisor_never_came(ex, tmp_path):
    from chute.executors.base import StepHandle

    d = tmp_path / "orphan"
    d.mkdir()
    (d / "launch.json").write_text("{}")
    assert ex.poll(StepHandle(d)) is None  # just launched: still starting
    old = time.time() - 60
    os.utime(d / "launch.json", (old, old))
    r = ex.poll(StepHandle(d))
    assert (r.outcome, r.message) == (ERROR, "supervisor never started")
    c = tmp_path / "cancelled"
    c.mkdir()
    (c / "launch.json").write_text("{}")
    os.utime(c / "launch.json", (old, old))
    ex.cancel(StepHandle(c), "stop it")
    assert ex.poll(StepHandle(c)).outcome == CANCELLED


def test_a_fenced_step_directory_is_never_run_by_a_late_supervisor(ex, tmp_path):
    """Exactly once: after reattach() answers "never started", a late request is refused."""
    marker = tmp_path / "ran"
    s = spec(tmp_path, ["sh", "-c", f"echo x >> {marker}"], name="late")
    s.step_dir.mkdir()
    (s.step_dir / "launch.json").write_text(json.dumps(s.to_json()))
    old = time.time() - 60
    os.utime(s.step_dir / "launch.json", (old, old))
    assert ex.reattach(s.step_dir) is None  # never started: fenced
    ex._ensure_server().send(s.step_dir, dict(os.environ))  # the late request arrives
    time.sleep(0.5)
    assert not marker.exists() and not (s.step_dir / "status.json").exists()
    r = wait(ex, ex.launch(s))  # the controller launches it again: it runs, once
    assert r.outcome == SUCCEEDED and marker.read_text() == "x\n"


def test_two_requests_for_one_step_run_it_once(ex, tmp_path):
    marker = tmp_path / "ran"
    s = spec(tmp_path, ["sh", "-c", f"echo x >> {marker}"], name="twice")
    h = ex.launch(s)
    ex._ensure_server().send(s.step_dir, dict(os.environ))  # a duplicate request
    r = wait(ex, h)
    time.sleep(0.3)
    assert r.outcome == SUCCEEDED and marker.read_text() == "x\n"


@pytest.mark.skipif(not sandbox.available(), reason="no mount namespaces here")
def test_private_paths_under_system_directories_use_an_overlay(ex, tmp_path):
    # Argo's arguments-artifacts puts an input at /usr/local/bin/kubectl: never on the host
    tag = uuid.uuid4().hex[:8]
    tool, out = f"/usr/local/bin/chute-tool-{tag}", f"/usr/local/share/chute-{tag}/out.txt"
    src = tmp_path / "tool"
    src.write_text("#!/bin/sh\necho tool-ok\n")
    src.chmod(0o755)
    script = f"mkdir -p {os.path.dirname(out)} && chute-tool-{tag} > {out} && ls /usr/local/bin >/dev/null"
    r, _ = run(ex, tmp_path, ["sh", "-c", script], input_files={tool: str(src)}, output_paths=[out])
    assert r.outcome == SUCCEEDED, r
    assert Path(r.outputs[out]).read_text() == "tool-ok\n"
    assert not os.path.lexists(tool) and not os.path.lexists(os.path.dirname(out))


@pytest.mark.skipif(not sandbox.available(), reason="no mount namespaces here")
def test_overlay_paths_in_a_new_root(ex, tmp_path):
    # /output (absent on the host) makes the step's root step_dir/root, where the host's
    # /usr is bind-mounted: the overlay's writes must still stay off the host
    tag = uuid.uuid4().hex[:8]
    tool, out = f"/usr/local/bin/chute-tool-{tag}", f"/usr/local/share/chute-{tag}/out.txt"
    src = tmp_path / "tool"
    src.write_text("#!/bin/sh\necho tool-ok\n")
    src.chmod(0o755)
    script = (f"mkdir -p {os.path.dirname(out)} && chute-tool-{tag} > {out}"
              f" && chute-tool-{tag} > /output && [ \"$(pwd)\" = / ]")
    r, _ = run(ex, tmp_path, ["sh", "-c", script], input_files={tool: str(src)},
               output_paths=[out, "/output"])
    assert r.outcome == SUCCEEDED, r
    assert Path(r.outputs[out]).read_text() == Path(r.outputs["/output"]).read_text()
    assert Path(r.outputs["/output"]).read_text() == "tool-ok\n"
    assert not os.path.lexists(tool) and not os.path.lexists(os.path.dirname(out))
    assert not os.path.lexists("/output")


def test_poll_and_cancel_of_a_step_directory_that_does_not_exist(ex, tmp_path):
    from chute.executors.base import StepHandle

    h = StepHandle(tmp_path / "nowhere")
    assert ex.poll(h).outcome == ERROR
    ex.cancel(h, "x")  # must not raise
    assert ex.reattach(tmp_path / "nowhere") is None
