"""Crash recovery and fencing with real processes: a controller killed with SIGKILL is
replaced by one that adopts its workflow; no succeeded step runs twice (R-1/R-3 in
small), and a second standalone controller refuses to start (R-4)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.conftest import REPO

CHAIN = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: chain}}
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
{tasks}
  - name: step
    inputs: {{parameters: [{{name: n}}]}}
    container:
      image: busybox
      command: [sh, -c, "sleep 0.4; echo {{{{inputs.parameters.n}}}} >> {marker}"]
"""


def _env(home) -> dict[str, str]:
    env = dict(os.environ)
    env.update(CHUTE_HOME=str(home), CHUTE_LEASE_TTL="2")
    env.pop("CHUTE_DATABASE_URL", None)
    env.pop("CHUTE_SERVER", None)
    return env


def _chute(*args, env, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "chute.cli.app", *args], env=env,
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


def test_killed_controller_is_adopted_and_no_step_runs_twice(tmp_path):
    marker = tmp_path / "marker.txt"
    tasks = "\n".join(
        f"      - {{name: t{i}, template: step, arguments: {{parameters: [{{name: n, value: '{i}'}}]}}"
        + (f", dependencies: [t{i - 1}]}}" if i else "}") for i in range(8))
    spec = tmp_path / "chain.yaml"
    spec.write_text(CHAIN.format(tasks=tasks, marker=marker))
    env = _env(tmp_path / "home")
    first = _chute("submit", str(spec), "--wait", env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # kill it mid-run: after 2 steps finished
        if marker.exists() and len(marker.read_text().split()) >= 2:
            break
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    second = _chute("wait", "chain", env=env)
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    assert out.strip() == "chain Succeeded"
    ran = marker.read_text().split()
    assert sorted(ran, key=int) == [str(i) for i in range(8)]  # each step exactly once


def test_second_controller_refuses_to_start(tmp_path):
    env = _env(tmp_path / "home")
    from chute.config import load_settings
    from chute.store import queries as q
    from chute.store.db import open_store

    first = _chute("controller", env=env)
    try:
        store = open_store(load_settings({"CHUTE_HOME": env["CHUTE_HOME"]}))
        deadline = time.monotonic() + 60
        while True:  # until the first one holds the lease
            with store.read() as s:
                if q.lease_holder(s, "controller", time.time()) is not None:
                    break
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        t0 = time.monotonic()
        second = _chute("controller", env=env)
        _, err = second.communicate(timeout=60)
        assert second.returncode != 0
        assert "lease held by pid" in err and str(first.pid) in err
        # it refuses as soon as it has read the lease (most of this is interpreter start)
        assert time.monotonic() - t0 < 30
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=20)
