"""LocalExecutor: supervisors outliving their launcher, lost supervisors, reattach, cancel,
reused supervisor processes, pipelined launches."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil

from chute.executors.base import CANCELLED, ERROR, SUCCEEDED
from chute.executors.local import LocalExecutor
from tests.fixtures.executor import (
    ex,  # noqa: F401 - the module's executor
    run,
    spec,
    sup_pid,
    wait,
    wait_for_file,
)

REPO = Path(__file__).resolve().parents[1]


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
    wait_for_file(s.step_dir / "step.pid")
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
    wait_for_file(s.step_dir / "step.pid")
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


def test_poll_and_cancel_of_a_step_directory_that_does_not_exist(ex, tmp_path):
    from chute.executors.base import StepHandle

    h = StepHandle(tmp_path / "nowhere")
    assert ex.poll(h).outcome == ERROR
    ex.cancel(h, "x")  # must not raise
    assert ex.reattach(tmp_path / "nowhere") is None
