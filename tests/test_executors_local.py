"""LocalExecutor: launch, poll, results, logs, env, scripts, secrets; argosay steps."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from chute.executors.base import ERROR, FAILED, SUCCEEDED
from tests.fixtures.executor import (
    ex,  # noqa: F401 - the module's executor
    log_lines,
    run,
    spec,
    wait,
)

REPO = Path(__file__).resolve().parents[1]


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


def test_script_file_is_executable(ex, tmp_path):
    # `command: [sh, -c]` with a script runs `sh -c <script path>`: the file itself
    r, _ = run(ex, tmp_path, ["sh", "-c"], script_source="#!/bin/sh\necho from-script\n")
    assert (r.outcome, r.result) == (SUCCEEDED, "from-script")


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
