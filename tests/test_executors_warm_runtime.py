"""Warm steps run the step runtime a zygote ran once (chute.executors.warm_runtime), and
get what their supervisor prepared once (signals, environment, sys.std*): every test
compares a warm step with the same compiled step run cold (``python3 script``).
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from chute.dsl import component
from chute.dsl.script import PARAM_OUT_DIR, build_source, runtime_source
from chute.executors import warm_runtime
from chute.executors.base import FAILED, SUCCEEDED, LaunchSpec
from chute.executors.local import LocalExecutor
from chute.executors.python import PythonExecutor
from tests.test_executors_python import log_lines, read_outputs, run, step, zygote_of


@component
def runtime_state(write: bool) -> str:
    g = globals()
    before = f"{g.get('chute_mark')},{g['INPUT_ENV_PREFIX']},{g['__name__']},{g['Metrics'].__module__}"
    if write:  # a step that changes the runtime's module must not change the next step's
        g["chute_mark"] = "set"
        g["INPUT_ENV_PREFIX"] = "CHANGED_"
        g["Metrics"].schema_title = "changed"
    return before


@component
def wrong_output() -> int:
    return "not an int"  # the runtime's encode_output raises TypeError


@component
def process_state() -> str:
    import os
    import signal
    import sys

    names = ("SIGINT", "SIGTERM", "SIGUSR1", "SIGCHLD", "SIGPIPE", "SIGHUP", "SIGXFSZ")
    sigs = ",".join(str(signal.getsignal(getattr(signal, n))) for n in names)
    main = sys.modules["__main__"]
    return (f"{sigs}|{sys.stdin.read()!r},{sys.stdin.seekable()},{sys.stdout.seekable()},"
            f"{sys.stderr.seekable()},{sys.stdout.line_buffering},{sys.stderr.line_buffering},"
            f"{sys.stdout.encoding}|{main.__file__ == os.path.abspath(sys.argv[0])},"
            f"{main.__spec__},{sys.path[0] == os.path.dirname(sys.argv[0])}|"
            f"{os.environ.get('CHUTE_NOTIFY_FD')},{os.environ['CHUTE_INPUT_x']}")


@component
def edited(x: int) -> str:
    return str(globals().get("EDITED"))


@pytest.fixture(scope="module")
def warm():
    with PythonExecutor() as executor:
        yield executor


@pytest.fixture(scope="module")
def cold():
    with LocalExecutor() as executor:
        yield executor


def output(result) -> str:
    return read_outputs(result)[f"{PARAM_OUT_DIR}/Output"]


def test_the_zygotes_runtime_text_is_the_one_steps_embed():
    assert warm_runtime.runtime_text() == runtime_source()


def test_runtime_module_changes_do_not_reach_the_next_step(warm, cold, tmp_path):
    first = run(warm, step(tmp_path, runtime_state, name="one", inputs={"write": "true"}))
    second = run(warm, step(tmp_path, runtime_state, name="two", inputs={"write": "false"}))
    coldr = run(cold, step(tmp_path / "cold", runtime_state, inputs={"write": "true"}))
    assert output(first) == output(second) == output(coldr) == "None,CHUTE_INPUT_,__main__,__main__"
    assert zygote_of(step(tmp_path, runtime_state, name="two")) is not None


def test_error_inside_the_runtime_reports_as_cold(warm, cold, tmp_path):
    ws, cs = step(tmp_path / "warm", wrong_output), step(tmp_path / "cold", wrong_output)
    w, c = run(warm, ws), run(cold, cs)
    assert w.outcome == c.outcome == FAILED and w.exit_code == c.exit_code == 1
    lines = log_lines(ws)
    assert lines == log_lines(cs)  # frame for frame, runtime frames named after the script
    text = "\n".join(t for _, t in lines)
    assert 'File "<step>/script"' in text and ", in encode_output" in text
    assert warm_runtime.FILENAME not in text
    error = "TypeError: output 'Output' is declared int, but the function returned str"
    assert lines[-1] == ("stderr", error)
    assert zygote_of(ws) is not None


def test_process_state_is_a_fresh_interpreters(warm, cold, tmp_path):
    w = run(warm, step(tmp_path / "warm", process_state, inputs={"x": "7"}))
    c = run(cold, step(tmp_path / "cold", process_state, inputs={"x": "7"}))
    assert w.outcome == c.outcome == SUCCEEDED
    assert output(w) == output(c)
    assert output(w).endswith("|True,None,True|None,7")
    assert "'',True,False,False,True,True" in output(w)  # stdin empty, stdout/err pipes


def test_a_script_with_another_runtime_runs_its_own(warm, cold, tmp_path):
    """The zygote's pre-run runtime serves only scripts that embed exactly chute's: a
    hand-edited one runs whole, its own runtime included."""
    source = build_source(edited)
    marker = 'INPUT_ENV_PREFIX = "CHUTE_INPUT_"\n'
    assert marker in source
    source = source.replace(marker, marker + "EDITED = 'yes'\n", 1)
    results = []
    for ex, root in ((warm, tmp_path / "warm"), (cold, tmp_path / "cold")):
        spec = step(root, edited, inputs={"x": "1"})
        spec = type(spec)(**{**spec.__dict__, "script_source": source})
        results.append(run(ex, spec))
        assert Path(spec.step_dir / "script").read_text() == source
    assert [output(r) for r in results] == ["yes", "yes"]
    plain = run(warm, step(tmp_path / "plain", edited, inputs={"x": "1"}))
    assert output(plain) == "None"  # the unedited script: chute's runtime, no EDITED


def test_process_steps_start_with_no_signal_ignored(cold, tmp_path):
    """A supervisor ignores SIGINT, SIGHUP and SIGPIPE (and, being Python, SIGXFSZ); exec
    passes ignoring on, so a process step would inherit it (``yes | head`` would then end
    with "Broken pipe" errors instead of SIGPIPE). It starts as in a container."""
    spec = LaunchSpec(workflow_uid="wf", node_id="sig", attempt=0, step_dir=tmp_path / "sig",
                      log_path=tmp_path / "logs" / "sig.log",
                      argv=["sh", "-c", "yes | head -n 1; grep SigIgn /proc/self/status"])
    result = run(cold, spec)
    assert result.outcome == SUCCEEDED
    lines = log_lines(spec)
    assert lines[0] == ("stdout", "y") and len(lines) == 2  # no "yes: Broken pipe"
    ignored = int(lines[1][1].split()[1], 16)
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, signal.SIGXFSZ):
        assert not ignored & (1 << (sig - 1)), sig
