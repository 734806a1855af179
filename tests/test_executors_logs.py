"""Step logs: complete, in order, timestamped, kept when the step or the controller dies (L-1, L-2)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from chute.executors.base import FAILED, SUCCEEDED, LaunchSpec
from chute.executors.local import LocalExecutor

REPO = Path(__file__).resolve().parents[1]
NUMBERS = "import sys\nfor i in range(int(sys.argv[1])): print(i)\n"


@pytest.fixture
def ex():
    with LocalExecutor() as executor:
        yield executor


def spec(tmp_path: Path, argv, name="s", **kw) -> LaunchSpec:
    return LaunchSpec("wf", name, 0, tmp_path / name, tmp_path / f"{name}.log", list(argv), **kw)


def wait(ex, handle, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r = ex.poll(handle)
        if r is not None:
            return r
        time.sleep(0.01)
    raise AssertionError(f"no result within {timeout}s")


def texts(log: Path, stream: str = "stdout") -> list[str]:
    out: list[str] = []
    if not log.exists():
        return out
    for line in log.read_text().splitlines():
        _, st, text = line.split(" ", 2) if line.count(" ") >= 2 else (*line.split(" "), "")
        if st == stream:
            out.append(text)
    return out


def test_100k_lines_intact_and_in_order(ex, tmp_path):
    """L-1: every line, once, in order."""
    s = spec(tmp_path, ["python", "-c", NUMBERS, "100000"])
    r = wait(ex, ex.launch(s))
    assert r.outcome == SUCCEEDED
    assert texts(s.log_path) == [str(i) for i in range(100000)]
    assert (s.step_dir / "stdout").read_text() == "".join(f"{i}\n" for i in range(100000))


LAUNCHER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from chute.executors.base import LaunchSpec
    from chute.executors.local import LocalExecutor
    d = Path(sys.argv[1])
    script = "import sys, time\\nfor i in range(100000):\\n    print(i)\\n    " \\
             "if i % 20000 == 0: sys.stdout.flush(); time.sleep(0.05)\\n"
    h = LocalExecutor().launch(LaunchSpec("wf", "n", 0, d / "step", d / "step.log",
                               ["python", "-c", script]))
    print("launched", flush=True)
    time.sleep(60)
    """
)


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.15])
def test_100k_lines_survive_a_controller_kill(ex, tmp_path, delay):
    """L-1 with the controller SIGKILLed while the step writes; the log is still whole."""
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(tmp_path)],
        stdout=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout.readline().strip() == b"launched"
    time.sleep(delay)
    proc.kill()
    proc.wait()
    h = ex.reattach(tmp_path / "step")
    assert h is not None
    r = wait(ex, h)
    assert r.outcome == SUCCEEDED
    assert texts(tmp_path / "step.log") == [str(i) for i in range(100000)]


def test_sigkilled_step_keeps_its_log(ex, tmp_path):
    """L-2: every line written before a SIGKILL is in the log."""
    script = "for i in $(seq 1 500); do echo line$i; done; echo last >&2; kill -KILL $$"
    s = spec(tmp_path, ["sh", "-c", script])
    r = wait(ex, ex.launch(s))
    assert r.outcome == FAILED and r.exit_code == 137
    assert texts(s.log_path) == [f"line{i}" for i in range(1, 501)]
    assert texts(s.log_path, "stderr") == ["last"]


def test_unflushed_partial_line_before_kill_is_kept(ex, tmp_path):
    s = spec(tmp_path, ["sh", "-c", "printf 'half a line'; kill -KILL $$"])
    wait(ex, ex.launch(s))
    assert texts(s.log_path) == ["half a line"]


def test_lines_are_logged_as_they_are_produced(ex, tmp_path):
    s = spec(tmp_path, ["sh", "-c", "echo first; sleep 2; echo second"])
    h = ex.launch(s)
    end = time.monotonic() + 1.5
    while time.monotonic() < end and "first" not in texts(s.log_path):
        time.sleep(0.01)
    assert texts(s.log_path) == ["first"]  # logged while the step still runs
    assert ex.poll(h) is None
    wait(ex, h)
    assert texts(s.log_path) == ["first", "second"]


def test_log_of_a_timed_out_step_keeps_what_it_printed(ex, tmp_path):
    # Argo's timeouts-step example: the main log contains "123" after the deadline kill
    s = spec(
        tmp_path,
        ["sh", "-c", "echo 123; sleep 100"],
        deadline=time.time() + 0.5,
        grace_seconds=0.2,
    )
    wait(ex, ex.launch(s))
    assert texts(s.log_path) == ["123"]


def test_binary_and_very_long_lines(ex, tmp_path):
    script = "import sys; sys.stdout.buffer.write(b'\\xff\\xfe bin\\n' + b'x' * 3000000 + b'\\n')"
    s = spec(tmp_path, ["python", "-c", script])
    r = wait(ex, ex.launch(s))
    assert r.outcome == SUCCEEDED
    raw = s.log_path.read_bytes()
    assert b"\xff\xfe bin" in raw and raw.count(b"x") == 3000000
    assert (s.step_dir / "stdout").stat().st_size == len(b"\xff\xfe bin\n") + 3000001
