"""R-5, heartbeat-loss detection without false positives, with real processes: (a) a step
whose supervisor died without a result (supervisor and step SIGKILLed) ends Error
("supervisor lost") or is retried by its retryStrategy, within one detection interval;
(b) a live but frozen supervisor (SIGSTOPped for longer than the lease TTL: 6 s in CI,
30 s behind the heavy marker) is never taken for dead, and its step succeeds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

SPEC = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: {name}}}
spec:
  entrypoint: main
  templates:
  - name: main
    retryStrategy: {{limit: {limit}, retryPolicy: Always}}
    container:
      image: busybox
      command: [sh, -c, "echo {{{{retries}}}} >> {marker}; {body}"]
"""
LEASE_TTL = 2.0
DETECTION = 3.0  # the controller polls every turn (ms); the budget is for a loaded CI box


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ, CHUTE_HOME=str(home), CHUTE_LEASE_TTL=str(int(LEASE_TTL)))
    env.pop("CHUTE_DATABASE_URL", None)
    env.pop("CHUTE_SERVER", None)
    return env


def _submit(tmp_path, name: str, limit: int, body: str):
    marker = tmp_path / "attempts"
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(SPEC.format(name=name, limit=limit, marker=marker, body=body))
    env = _env(tmp_path / "home")
    proc = subprocess.Popen([sys.executable, "-m", "chute.cli.app", "submit", str(spec),
                             "--wait"], env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not marker.exists():  # the first attempt is running
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    dirs = list((tmp_path / "home" / "steps").glob("*/*/supervisor.pid"))
    assert len(dirs) == 1, dirs
    return proc, dirs[0].parent, marker


def _pids(step_dir: Path) -> tuple[int, int]:
    deadline = time.monotonic() + 10
    while not (step_dir / "step.pid").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    sup = json.loads((step_dir / "supervisor.pid").read_text())["pid"]
    step = json.loads((step_dir / "step.pid").read_text())["pid"]
    return sup, step


def _nodes(home: Path, name: str) -> list:
    from chute.config import load_settings
    from chute.store import queries as q
    from chute.store.db import open_store

    store = open_store(load_settings({"CHUTE_HOME": str(home)}))
    try:
        with store.read() as s:
            return q.nodes_of(s, q.get_workflow(s, name).uid)
    finally:
        store.dispose()


def _workflow_phase(home: Path, name: str) -> str:
    from chute.config import load_settings
    from chute.store import queries as q
    from chute.store.db import open_store

    store = open_store(load_settings({"CHUTE_HOME": str(home)}))
    try:
        with store.read() as s:
            return q.get_workflow(s, name).phase
    finally:
        store.dispose()


def _first_attempt(home: Path, name: str):
    pods = sorted((n for n in _nodes(home, name) if n.type == "Pod"), key=lambda n: n.name)
    return pods[0] if pods else None


@pytest.mark.parametrize("limit", [0, 1])
def test_a_lost_supervisor_is_detected_promptly(tmp_path, limit):
    """(a): with no retries the step ends Error "supervisor lost"; with one, it is retried
    and the workflow succeeds. The first attempt never runs again by itself."""
    name = f"lost{limit}"
    body = "test {{retries}} -gt 0 || sleep 60"
    proc, step_dir, marker = _submit(tmp_path, name, limit, body)
    sup, step = _pids(step_dir)
    os.kill(sup, signal.SIGKILL)
    os.killpg(step, signal.SIGKILL)  # the step leads its own session
    t0, wall0 = time.monotonic(), time.time()
    home = tmp_path / "home"
    while True:
        node = _first_attempt(home, name)
        if node is not None and node.phase not in ("Pending", "Running"):
            break
        assert time.monotonic() - t0 < LEASE_TTL + DETECTION, node and node.phase
        time.sleep(0.05)
    detected = time.monotonic() - t0
    assert node.phase == "Error" and "supervisor lost" in (node.message or ""), \
        (node.phase, node.message)
    out, err = proc.communicate(timeout=60)
    phase = _workflow_phase(tmp_path / "home", name)
    assert phase == ("Succeeded" if limit else "Error"), phase
    if limit:
        assert proc.returncode == 0, (out, err)
        assert marker.read_text().split() == ["0", "1"]
    else:
        assert proc.returncode != 0
        assert marker.read_text().split() == ["0"]
    print(f"supervisor loss detected in {detected:.2f} s (status.json after "
          f"{(step_dir / 'status.json').stat().st_mtime - wall0:.2f} s)")


def _frozen_supervisor(tmp_path, freeze: float) -> None:
    """(b): the supervisor is SIGSTOPped for ``freeze`` seconds (far beyond the lease TTL)
    while its step lives on; nothing marks the step failed meanwhile, and once the
    supervisor continues the step succeeds in its one attempt."""
    name = "frozen"
    proc, step_dir, marker = _submit(tmp_path, name, 1, f"sleep {freeze + 1:g}")
    sup, step = _pids(step_dir)
    os.kill(sup, signal.SIGSTOP)
    checks = 0
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < freeze:
            node = _first_attempt(tmp_path / "home", name)
            assert node.phase == "Running", (node.phase, node.message)
            assert not (step_dir / "status.json").exists()
            os.kill(step, 0)  # the step itself is alive all along
            checks += 1
            time.sleep(0.2)
    finally:
        os.kill(sup, signal.SIGCONT)
    out, err = proc.communicate(timeout=60 + freeze)
    assert proc.returncode == 0, (out, err)
    assert marker.read_text().split() == ["0"]  # one attempt: no retry was triggered
    pods = [n for n in _nodes(tmp_path / "home", name) if n.type == "Pod"]
    assert [n.phase for n in pods] == ["Succeeded"]
    print(f"supervisor frozen {freeze:g} s ({freeze / LEASE_TTL:.0f}x the lease TTL): "
          f"0 false failures over {checks} checks")


def test_a_frozen_supervisor_is_not_failed(tmp_path):
    """(b) at CI size: frozen for 3x the lease TTL."""
    _frozen_supervisor(tmp_path, 3 * LEASE_TTL)


@pytest.mark.heavy
def test_a_supervisor_frozen_30s_is_not_failed(tmp_path):
    """(b) at RELIABILITY.md's figure: the supervisor blocked for 30 s while the step lives."""
    _frozen_supervisor(tmp_path, 30.0)
