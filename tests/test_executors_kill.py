"""Exit codes, signals, deadlines and cancellation: nothing a step spawned survives (P-1..P-3)."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path

import psutil
import pytest

from chute.executors.base import CANCELLED, FAILED, SUCCEEDED, TIMEOUT, LaunchSpec
from chute.executors.local import LocalExecutor
from chute.executors.supervisor import DEADLINE_MESSAGE
from tests.fixtures.executor import wait


@pytest.fixture(scope="module")
def ex():
    with LocalExecutor() as executor:
        yield executor


def spec(tmp_path: Path, argv, name="s", **kw) -> LaunchSpec:
    return LaunchSpec("wf", name, 0, tmp_path / name, tmp_path / f"{name}.log", list(argv), **kw)


# ------------------------------------------------------------------ P-3


@pytest.mark.parametrize(
    ("script", "outcome", "code", "sig"),
    [
        ("exit 0", SUCCEEDED, 0, None),
        ("exit 1", FAILED, 1, None),
        ("exit 137", FAILED, 137, None),  # an exit code, not a signal
        ("kill -TERM $$", FAILED, 143, signal.SIGTERM),
        ("kill -KILL $$", FAILED, 137, signal.SIGKILL),
        ("kill -SEGV $$", FAILED, 139, signal.SIGSEGV),
    ],
)
def test_exit_code_and_signal_fidelity(ex, tmp_path, script, outcome, code, sig):
    r = wait(ex, ex.launch(spec(tmp_path, ["sh", "-c", script])))
    assert (r.outcome, r.exit_code, r.signal) == (outcome, code, sig)
    if outcome == FAILED:
        assert r.message == f"Error (exit code {code})"


@pytest.mark.parametrize("private", [False, True])
def test_signal_fidelity_with_a_private_view(ex, tmp_path, private):
    # a private view must not cost signal fidelity (bwrap would report exit 143 instead)
    kw = {"private_paths": ["/tmp/x"]} if private else {}
    r = wait(ex, ex.launch(spec(tmp_path, ["sh", "-c", "kill -TERM $$"], **kw)))
    assert (r.exit_code, r.signal) == (143, signal.SIGTERM)


# ------------------------------------------------------------------ P-1 / P-2

# The step: a child that ignores SIGTERM, a plain `sleep`, and a double-forked daemon in
# its own session that ignores SIGTERM; it writes all pids to a file, then sleeps.
TREE = r"""
import os, signal, subprocess, sys, time
pids = [os.getpid()]
pid = os.fork()
if pid == 0:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(1000)
    os._exit(0)
pids.append(pid)
pids.append(subprocess.Popen(["sleep", "1000"]).pid)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.write(w, str(os.getpid()).encode())
        os.close(w)
        time.sleep(1000)
    os._exit(0)
os.waitpid(pid, 0)
os.close(w)
pids.append(int(os.read(r, 64)))
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(" ".join(map(str, pids)))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
print("ready", flush=True)
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the main process ignores TERM too
time.sleep(1000)
"""


def marked(mark: str) -> list[int]:
    """Live processes carrying the env var CHUTE_TEST_MARK=mark."""
    out = []
    for p in psutil.process_iter():
        try:
            if p.status() != psutil.STATUS_ZOMBIE and p.environ().get("CHUTE_TEST_MARK") == mark:
                out.append(p.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return out


def tree_spec(tmp_path, i, **kw):
    mark = uuid.uuid4().hex
    pids = tmp_path / f"pids{i}"
    s = spec(
        tmp_path,
        ["python", "-c", TREE, str(pids)],
        name=f"t{i}",
        env={"CHUTE_TEST_MARK": mark},
        **kw,
    )
    return s, mark, pids


def _timeout_trials(ex, tmp_path, n):
    grace = 0.5
    trials = []
    for i in range(n):
        s, mark, pids = tree_spec(tmp_path, i, deadline=time.time() + 3.0, grace_seconds=grace)
        trials.append((s, mark, pids, ex.launch(s)))
    for s, mark, pids, h in trials:
        r = wait(ex, h)
        assert pids.exists(), f"the tree never got ready: {s.log_path.read_text()}"
        assert r.outcome == TIMEOUT, r
        assert r.message == DEADLINE_MESSAGE
        assert r.exit_code == 137 and r.signal == signal.SIGKILL  # it ignored SIGTERM
        # everything is gone once the result is written, within 2 s of the deadline
        assert r.finished_at - s.deadline < 2.0, r.finished_at - s.deadline
        survivors = [p for p in map(int, pids.read_text().split()) if _alive(p)]
        assert survivors == [] and marked(mark) == []


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_timeout_kills_whole_tree(ex, tmp_path):
    """P-1 at the CI figure: 10 trials, run side by side."""
    _timeout_trials(ex, tmp_path, 10)


@pytest.mark.heavy
def test_timeout_kills_whole_tree_50_trials(ex, tmp_path):
    for batch in range(5):
        d = tmp_path / f"b{batch}"
        d.mkdir()
        _timeout_trials(ex, d, 10)


def test_cancel_kills_whole_tree(ex, tmp_path):
    """P-2: cancel stops everything the step spawned, with outcome CANCELLED."""
    (
        s,
        mark,
        pids,
    ) = tree_spec(tmp_path, 0, grace_seconds=0.3)
    h = ex.launch(s)
    end = time.monotonic() + 20
    while not pids.exists() and time.monotonic() < end:
        time.sleep(0.01)
    assert pids.exists()
    t0 = time.time()
    ex.cancel(h, "terminated")
    r = wait(ex, h)
    assert r.outcome == CANCELLED and r.message == "terminated"
    assert r.finished_at - t0 < 1.5
    assert [p for p in map(int, pids.read_text().split()) if _alive(p)] == []
    assert marked(mark) == []


def test_leftovers_are_killed_when_the_main_process_exits(ex, tmp_path):
    # as at the end of a container: a background process does not outlive the step
    mark = uuid.uuid4().hex
    s = spec(tmp_path, ["sh", "-c", "sleep 1000 & echo bg=$!"], env={"CHUTE_TEST_MARK": mark})
    r = wait(ex, ex.launch(s), timeout=10)
    assert r.outcome == SUCCEEDED
    bg = int(r.result.split("=")[1])
    assert not _alive(bg) and marked(mark) == []


def test_deadline_already_passed(ex, tmp_path):
    s = spec(tmp_path, ["sleep", "100"], deadline=time.time() - 1, grace_seconds=0.2)
    r = wait(ex, ex.launch(s), timeout=10)
    assert r.outcome == TIMEOUT and r.signal == signal.SIGTERM


def test_cancel_after_the_end_changes_nothing(ex, tmp_path):
    h = ex.launch(spec(tmp_path, ["true"]))
    r = wait(ex, h)
    ex.cancel(h, "too late")
    assert ex.poll(h) == r


def test_cancel_with_supervisor_gone_kills_the_step(ex, tmp_path):
    mark = uuid.uuid4().hex
    s = spec(tmp_path, ["sh", "-c", "sleep 1000"], env={"CHUTE_TEST_MARK": mark})
    h = ex.launch(s)
    end = time.monotonic() + 10
    while not (s.step_dir / "step.pid").exists() and time.monotonic() < end:
        time.sleep(0.005)
    os.kill(json.loads((s.step_dir / "supervisor.pid").read_text())["pid"], signal.SIGKILL)
    time.sleep(0.05)
    ex.cancel(h, "stop")
    r = ex.poll(h)
    assert r is not None and r.outcome == CANCELLED
    assert marked(mark) == []


def test_cancel_right_after_launch_is_not_lost(ex, tmp_path):
    for i in range(5):
        mark = uuid.uuid4().hex
        h = ex.launch(
            spec(tmp_path, ["sleep", "1000"], name=f"c{i}", env={"CHUTE_TEST_MARK": mark})
        )
        ex.cancel(h, "early")
        r = wait(ex, h, timeout=10)
        assert (r.outcome, r.message) == (CANCELLED, "early")
        assert marked(mark) == []


def test_secret_in_a_message_is_masked(ex, tmp_path):
    r = wait(ex, ex.launch(spec(tmp_path, ["no-such-cmd-hunter2"], secret_values=["hunter2"])))
    assert "hunter2" not in r.message and "***" in r.message
    assert "hunter2" not in (tmp_path / "s" / "status.json").read_text()
