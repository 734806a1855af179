"""The fork server reads a launch request's step directory off the start of the line, and
a zygote parses a request only for a script source it has not seen: the rest of the line
(10-15 kB) is the supervisor's to parse."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from chute.dsl.script import build_source
from chute.executors import forkserver, warm_worker
from chute.executors.base import ERROR, LaunchSpec, StepHandle
from chute.executors.local import LocalExecutor, _spec_json
from tests.test_executors_python import greet


def request(step_dir: str, source: str | None) -> bytes:
    """A request line as the controller writes it (chute.executors.local)."""
    spec = LaunchSpec("wf", "n", 0, Path(step_dir), Path("/l/n.log"), ["python3"],
                      script_source=source)
    return (b'{"step_dir": ' + json.dumps(step_dir).encode() + b', "env": {"A": "1"}, "spec": '
            + _spec_json(spec) + b"}")


@pytest.mark.parametrize("step_dir", ["/h/steps/wf/n-0", "/h/st\u00e9ps/n", '/h/a"b\\c', "/h/a b"])
def test_the_step_directory_is_read_as_json_would(step_dir):
    line = request(step_dir, "print(1)")
    assert forkserver._step_dir(line) == json.loads(line)["step_dir"] == step_dir


@pytest.mark.parametrize("line", [b'{"env": {}}', b"not json", b'{"step_dir": 3}'])
def test_a_request_without_a_step_directory_is_refused(line):
    with pytest.raises((ValueError, KeyError, TypeError)):
        forkserver._step_dir(line)


def test_the_zygote_parses_a_request_only_for_a_new_source(monkeypatch):
    monkeypatch.setattr(warm_worker, "INHERITED", {})
    monkeypatch.setattr(warm_worker, "_SEEN", set())
    parsed = []
    real = json.loads
    monkeypatch.setattr(warm_worker.json, "loads", lambda s: parsed.append(1) or real(s))
    source = build_source(greet)
    for i in range(3):
        warm_worker.precompile(request(f"/h/steps/s{i}", source))
    assert len(parsed) == 1  # the first request only
    assert hashlib.sha256(source.encode()).digest() in warm_worker.INHERITED
    warm_worker.precompile(request("/h/steps/other", source + "\n# another\n"))
    assert len(parsed) == 2 and len(warm_worker.INHERITED) == 2
    warm_worker.precompile(request("/h/steps/plain", None))  # a process step: nothing
    assert len(warm_worker.INHERITED) == 2


def test_a_request_whose_rest_does_not_parse_ends_its_step_at_once(tmp_path):
    """The fork server hands a request out on its step_dir alone; a worker that cannot
    read the rest records the step as an ERROR (as a supervisor that cannot start)."""
    step_dir = tmp_path / "s"
    step_dir.mkdir()
    (step_dir / "launch.json").write_bytes(request(str(step_dir), None))  # as launch() does
    with LocalExecutor() as ex:
        server = ex._ensure_server()
        server.proc.stdin.write(b'{"step_dir": ' + json.dumps(str(step_dir)).encode()
                                + b', "env": {not json}\n')
        server.proc.stdin.flush()
        handle = StepHandle(step_dir)
        end = time.monotonic() + 10
        while (result := ex.poll(handle)) is None and time.monotonic() < end:
            ex.wait(0.05)
    assert result is not None and result.outcome == ERROR
    assert result.message.startswith("could not start supervisor: unreadable request")
