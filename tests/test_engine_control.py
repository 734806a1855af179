"""Requests to running workflows through the CLI, with real processes: stop and terminate
(exit handlers run or not), resume of a suspend step, retry that keeps succeeded steps,
resubmit."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from chute.errors import NotFoundError
from tests.conftest import REPO


@pytest.fixture
def chute(tmp_path):
    env = dict(os.environ, CHUTE_HOME=str(tmp_path / "home"), CHUTE_LEASE_TTL="3")
    env.pop("CHUTE_DATABASE_URL", None)
    env.pop("CHUTE_SERVER", None)

    def run(*args, background=False):
        cmd = [sys.executable, "-m", "chute.cli.app", *map(str, args)]
        if background:
            return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
        return subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True,
                              timeout=90)
    run.home = env["CHUTE_HOME"]
    return run


def _status(chute, name):
    """The workflow's Argo-shaped status, read in-process (a CLI call costs seconds)."""
    from chute.config import load_settings
    from chute.engine.status import workflow_status
    from chute.store import queries as q
    from chute.store.db import open_store

    store = open_store(load_settings({"CHUTE_HOME": chute.home}))
    try:
        with store.read() as s:
            row = q.get_workflow(s, name)
            return workflow_status(row, q.nodes_of(s, row.uid))["status"]
    finally:
        store.dispose()


def _wait_for(cond, timeout=90.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if cond():
                return
        except (KeyError, StopIteration, LookupError, NotFoundError):
            pass
        time.sleep(0.2)
    raise AssertionError("condition not reached")


def _node(status, display):
    return next(n for n in status["nodes"].values() if n["displayName"] == display)


LONG = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: long}
spec:
  entrypoint: main
  onExit: bye
  templates:
  - name: main
    container: {image: busybox, command: [sleep, "60"]}
  - name: bye
    container: {image: busybox, command: [echo, "exit handler ran: {{workflow.status}}"]}
"""


@pytest.mark.parametrize("action,handler_runs", [("stop", True), ("terminate", False)])
def test_stop_and_terminate(chute, tmp_path, action, handler_runs):
    spec = tmp_path / "long.yaml"
    spec.write_text(LONG)
    proc = chute("submit", spec, "--wait", background=True)
    _wait_for(lambda: _status(chute, "long")["nodes"]["long"]["phase"] == "Running")
    t0 = time.monotonic()
    assert chute(action, "long").returncode == 0
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1 and time.monotonic() - t0 < 60  # generous: CI is loaded
    status = _status(chute, "long")
    assert status["phase"] == "Failed"
    assert status["message"] == f"Stopped with strategy '{action.capitalize()}'"
    exit_nodes = [n for n in status["nodes"].values() if n["name"] == "long.onExit"]
    assert bool(exit_nodes) == handler_runs
    if handler_runs:
        assert exit_nodes[0]["phase"] == "Succeeded"
        assert "exit handler ran: Failed" in chute("logs", "long", "long.onExit").stdout


def test_resume_a_suspend_step(chute, tmp_path):
    spec = tmp_path / "approve.yaml"
    spec.write_text("""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: approve}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: wait, template: gate}
    - - {name: after, template: hi}
  - name: gate
    suspend: {}
  - name: hi
    container: {image: busybox, command: [echo, released]}
""")
    proc = chute("submit", spec, "--wait", background=True)
    _wait_for(lambda: _node(_status(chute, "approve"), "wait")["phase"] == "Running")
    time.sleep(1)
    assert _status(chute, "approve")["phase"] == "Running"
    assert chute("resume", "approve").returncode == 0
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert _node(_status(chute, "approve"), "after")["phase"] == "Succeeded"


def test_retry_reruns_only_failed_steps_and_resubmit(chute, tmp_path):
    flag, count = tmp_path / "flag", tmp_path / "count"
    spec = tmp_path / "flaky.yaml"
    spec.write_text(f"""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: flaky}}
spec:
  entrypoint: main
  arguments: {{parameters: [{{name: p, value: v1}}]}}
  templates:
  - name: main
    steps:
    - - {{name: once, template: once}}
    - - {{name: flaky, template: flaky}}
  - name: once
    container: {{image: busybox, command: [sh, -c, "echo ran >> {count}"]}}
  - name: flaky
    container: {{image: busybox, command: [sh, -c, "test -f {flag} || {{ touch {flag}; exit 1; }}"]}}
""")
    first = chute("submit", spec, "--wait")
    assert first.returncode == 1 and _status(chute, "flaky")["phase"] == "Failed"
    again = chute("retry", "flaky", "--wait")
    assert again.returncode == 0, again.stderr
    status = _status(chute, "flaky")
    assert status["phase"] == "Succeeded"
    assert count.read_text().split() == ["ran"]  # the succeeded step did not run again
    re = chute("resubmit", "flaky", "--wait")
    assert re.returncode == 0
    new = re.stdout.split()[0]
    assert new.startswith("flaky-") and new != "flaky"
    assert count.read_text().split() == ["ran", "ran"]
    assert _status(chute, new)["phase"] == "Succeeded"


def test_resume_supplies_a_suspend_steps_output_parameters(chute, tmp_path):
    """Argo's intermediate parameters: ``chute resume -p`` fills the suspend node's outputs
    whose ``valueFrom.supplied`` is set; an unsupplied one takes its default."""
    spec = tmp_path / "ask.yaml"
    spec.write_text("""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: ask}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: approve, template: approve}
    - - name: release
        template: echo
        arguments:
          parameters:
          - {name: who, value: "{{steps.approve.outputs.parameters.approver}}"}
          - {name: env, value: "{{steps.approve.outputs.parameters.environment}}"}
  - name: approve
    suspend: {}
    outputs:
      parameters:
      - name: approver
        valueFrom: {supplied: {}}
      - name: environment
        valueFrom: {default: staging, supplied: {}}
  - name: echo
    inputs: {parameters: [{name: who}, {name: env}]}
    container:
      image: busybox
      command: [echo, "approved by {{inputs.parameters.who}} for {{inputs.parameters.env}}"]
""")
    proc = chute("submit", spec, "--wait", background=True)
    _wait_for(lambda: _node(_status(chute, "ask"), "approve")["phase"] == "Running")
    assert chute("resume", "ask", "-p", "bad").returncode == 2  # NAME=VALUE expected
    res = chute("resume", "ask", "-p", "approverr=x")  # no such supplied output: refused
    assert res.returncode == 2 and "'approverr'" in res.stderr, res.stderr
    assert _node(_status(chute, "ask"), "approve")["phase"] == "Running"
    res = chute("resume", "ask", "-p", "approver=ada lovelace")
    assert res.returncode == 0, res.stderr
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    status = _status(chute, "ask")
    outputs = {p["name"]: p["value"]
               for p in _node(status, "approve")["outputs"]["parameters"]}
    assert outputs == {"approver": "ada lovelace", "environment": "staging"}
    assert chute("logs", "ask", "release").stdout.strip() == \
        "approved by ada lovelace for staging"


def test_resume_while_no_controller_runs_is_applied_on_adoption(chute, tmp_path):
    """``chute resume -p`` made while the controller is dead: the one that adopts the
    workflow lets the suspend step go on with the supplied value."""
    import signal

    spec = tmp_path / "gate.yaml"
    spec.write_text("""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: gate}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: approve, template: approve}
    - - name: release
        template: echo
        arguments:
          parameters: [{name: who, value: "{{steps.approve.outputs.parameters.who}}"}]
  - name: approve
    suspend: {}
    outputs:
      parameters: [{name: who, valueFrom: {supplied: {}}}]
  - name: echo
    inputs: {parameters: [{name: who}]}
    container: {image: busybox, command: [echo, "by {{inputs.parameters.who}}"]}
""")
    proc = chute("submit", spec, "--wait", background=True)
    _wait_for(lambda: _node(_status(chute, "gate"), "approve")["phase"] == "Running")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert chute("resume", "gate", "-p", "who=grace").returncode == 0
    res = chute("wait", "gate")
    assert res.returncode == 0, res.stderr
    assert chute("logs", "gate", "release").stdout.strip() == "by grace"
