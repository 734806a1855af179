"""The workflow commands against a real ``chute server`` process (CHUTE_SERVER set):
they go through its REST API and leave the CLI's own CHUTE_HOME untouched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest_plugins = ["tests.fixtures.server"]

from tests.fixtures.server import free_port
from tests.test_server_cli import _start, _stop

ROOT = Path(__file__).resolve().parents[1]
HELLO = ROOT / "examples" / "hello-world.yaml"
TOKEN = "test-token-for-cli-server-mode-0123456789"

BAD_SPEC = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: bad-}
spec:
  entrypoint: nowhere
  templates:
  - name: main
    container: {image: busybox, command: [echo, hi]}
"""


@pytest.fixture
def remote(tmp_path):
    """A server process on its own home; yields (url, server_home, client_home)."""
    server_home = tmp_path / "server-home"
    client_home = tmp_path / "client-home"
    server_home.mkdir()
    client_home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUTE_")}
    env.update(CHUTE_HOME=str(server_home), CHUTE_TOKEN=TOKEN)
    port = free_port()
    proc, _ = _start(port, env)
    try:
        yield f"http://127.0.0.1:{port}", server_home, client_home
    finally:
        _stop(proc)


def _env(url: str, home: Path, token: str = TOKEN) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUTE_")}
    env.update(CHUTE_HOME=str(home), CHUTE_SERVER=url, CHUTE_TOKEN=token)
    return env


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """Run ``chute ARGS`` as its own process, as a user would."""
    return subprocess.run([sys.executable, "-m", "chute.cli.app", *args], check=False, env=env,
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.fixture
def run(monkeypatch, capsys):
    """Run ``chute ARGS`` in this process (faster) with exactly ``env``'s CHUTE_ settings."""
    from chute.cli.app import main

    def call(env: dict[str, str], *args: str) -> SimpleNamespace:
        with monkeypatch.context() as m:
            for k in [k for k in os.environ if k.startswith("CHUTE_")]:
                m.delenv(k)
            for k, v in env.items():
                if k.startswith("CHUTE_"):
                    m.setenv(k, v)
            capsys.readouterr()
            rc = main(list(args))
            out = capsys.readouterr()
        return SimpleNamespace(returncode=rc, stdout=out.out, stderr=out.err)

    return call


def test_workflow_commands_go_through_the_server(remote, run):
    url, server_home, client_home = remote
    env = _env(url, client_home)

    sub = cli(env, "submit", str(HELLO), "-p", "message=hi from the server", "--wait")
    assert sub.returncode == 0, sub.stderr
    name = sub.stdout.strip()
    assert name.startswith("hello-world-")

    listed = run(env, "list", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["phase"]) for r in rows] == [(name, "Succeeded")]
    table = run(env, "list")
    assert name in table.stdout and "Succeeded" in table.stdout

    got = run(env, "get", name, "-o", "json")
    assert got.returncode == 0, got.stderr
    doc = json.loads(got.stdout)
    assert doc["kind"] == "Workflow" and doc["metadata"]["name"] == name
    assert doc["status"]["phase"] == "Succeeded"
    pods = [n for n in doc["status"]["nodes"].values() if n["type"] == "Pod"]
    assert [p["templateName"] for p in pods] == ["hello-world"]
    tree = run(env, "get", name)
    assert "Status:      Succeeded" in tree.stdout and "hello-world" in tree.stdout

    logs = run(env, "logs", name)
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.splitlines() == ["hi from the server"]
    one = run(env, "logs", name, pods[0]["displayName"])
    assert one.stdout.splitlines() == ["hi from the server"]

    # the CLI's own home stays empty: no database, no logs, no step directories
    assert list(client_home.iterdir()) == []
    assert (server_home / "chute.db").exists()
    assert (server_home / "logs" / doc["metadata"]["uid"]).is_dir()

    gone = run(env, "delete", name)
    assert gone.returncode == 0, gone.stderr
    assert gone.stdout.strip() == f'Workflow "{name}" deleted'
    missing = run(env, "get", name)
    assert missing.returncode == 2
    assert "Traceback" not in missing.stderr and name in missing.stderr
    assert json.loads(run(env, "list", "-o", "json").stdout) == []
    assert list(client_home.iterdir()) == []


def test_bad_spec_wrong_token_and_unreachable_server(remote, run, tmp_path):
    url, _, client_home = remote
    env = _env(url, client_home)
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_SPEC)

    res = run(env, "submit", str(bad))
    assert res.returncode == 2
    assert "nowhere" in res.stderr and "Traceback" not in res.stderr
    assert res.stdout == ""
    assert json.loads(run(env, "list", "-o", "json").stdout) == []

    # an unknown parameter passes local loading; the server's 4xx is one clear message
    res = run(env, "submit", str(HELLO), "-p", "nosuch=1")
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert res.stderr.startswith("error: ") and "nosuch" in res.stderr
    assert "Traceback" not in res.stderr
    assert json.loads(run(env, "list", "-o", "json").stdout) == []

    # a WorkflowTemplate stored through the server, then run by reference
    tmpl = tmp_path / "tmpl.yaml"
    tmpl.write_text(HELLO.read_text().replace("kind: Workflow", "kind: WorkflowTemplate")
                    .replace("generateName: hello-world-", "name: hello-tmpl"))
    res = run(env, "template", "create", str(tmpl))
    assert (res.returncode, res.stdout.strip()) == (0, "WorkflowTemplate/hello-tmpl created")
    ref = tmp_path / "ref.yaml"
    ref.write_text("apiVersion: argoproj.io/v1alpha1\nkind: Workflow\n"
                   "metadata: {generateName: by-ref-}\n"
                   "spec: {workflowTemplateRef: {name: hello-tmpl}}\n")
    res = run(env, "submit", str(ref), "--wait", "-p", "message=by reference")
    assert res.returncode == 0, res.stderr
    assert run(env, "logs", res.stdout.strip()).stdout.splitlines() == ["by reference"]

    res = cli(_env(url, client_home, token="wrong"), "list")
    assert res.returncode == 2
    assert "refused the token" in res.stderr and "Traceback" not in res.stderr

    res = run(_env(f"http://127.0.0.1:{free_port()}", client_home), "get", "x")
    assert res.returncode == 1
    assert "cannot reach the chute server" in res.stderr and "Traceback" not in res.stderr
    assert list(client_home.iterdir()) == []


SLEEPY = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: sleepy-}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: nap, template: nap}
    - - {name: after, template: nap}
  - name: nap
    container: {image: busybox, command: [sleep, "30"]}
"""

FLAKY = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: flaky-}
spec:
  entrypoint: once
  templates:
  - name: once
    container:
      image: busybox
      command: [sh, -c, "if [ -f 'MARKER' ]; then exit 0; fi; touch 'MARKER'; exit 1"]
"""


def test_lifecycle_actions_through_the_server(remote, run, tmp_path):
    url, _, client_home = remote
    env = _env(url, client_home)
    spec = tmp_path / "sleepy.yaml"
    spec.write_text(SLEEPY)
    name = run(env, "submit", str(spec)).stdout.strip()
    assert name.startswith("sleepy-")

    res = run(env, "suspend", name)
    assert (res.returncode, res.stdout.strip()) == (0, f"workflow {name} suspended"), res.stderr
    res = run(env, "resume", name)
    assert (res.returncode, res.stdout.strip()) == (0, f"workflow {name} resumed"), res.stderr
    res = run(env, "terminate", name)
    assert (res.returncode, res.stdout.strip()) == (0, f"workflow {name} terminated"), res.stderr
    res = run(env, "wait", name)
    assert res.returncode == 1 and res.stdout.strip() in (f"{name} Failed", f"{name} Error")

    # retry reruns the failed step: it fails the first time only
    marker = tmp_path / "tried"
    flaky = tmp_path / "flaky.yaml"
    flaky.write_text(FLAKY.replace("MARKER", str(marker)))
    first = run(env, "submit", str(flaky), "--wait")
    assert first.returncode == 1 and marker.exists(), first.stderr
    flaky_name = first.stdout.strip()
    res = run(env, "retry", flaky_name, "--wait")
    assert res.returncode == 0, (res.stdout, res.stderr)
    assert res.stdout.splitlines() == [flaky_name, f"{flaky_name} Succeeded"]

    # delete of an unknown run: the server's 404 is the same message and exit 2 as locally
    res = run(env, "delete", "no-such-run")
    assert res.returncode == 2 and "no-such-run" in res.stderr
    assert "Traceback" not in res.stderr

    hello = run(env, "submit", str(HELLO), "--wait")
    assert hello.returncode == 0, hello.stderr
    again = run(env, "resubmit", hello.stdout.strip(), "--wait")
    assert again.returncode == 0, again.stderr
    lines = again.stdout.splitlines()
    assert lines[0].startswith("hello-world-") and lines[0] != hello.stdout.strip()
    assert lines[1] == f"{lines[0]} Succeeded"
    names = {r["name"] for r in json.loads(run(env, "list", "-o", "json").stdout)}
    assert names == {name, flaky_name, hello.stdout.strip(), lines[0]}
    assert list(client_home.iterdir()) == []


ASK = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: ask-}
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
      - name: fixed
        valueFrom: {default: x}
  - name: echo
    inputs: {parameters: [{name: who}, {name: env}]}
    container:
      image: busybox
      command: [echo, "approved by {{inputs.parameters.who}} for {{inputs.parameters.env}}"]
"""


def test_resume_with_values_through_the_server(remote, run, tmp_path):
    """``chute resume NAME -p name=value`` through CHUTE_SERVER: the values travel in the
    resume request's JSON body and fill the suspend step's supplied outputs; a name that
    is no suspend step's supplied output is refused (exit 2, 400 naming it) and changes
    nothing."""
    import time

    from chute.errors import UserError
    from chute.server.client import ServerClient

    url, _, client_home = remote
    env = _env(url, client_home)
    spec = tmp_path / "ask.yaml"
    spec.write_text(ASK)
    name = run(env, "submit", str(spec)).stdout.strip()
    assert name.startswith("ask-")
    with ServerClient(url, TOKEN) as client:
        deadline = time.monotonic() + 60
        while True:  # the suspend step is waiting
            nodes = client.get_run(name)["status"].get("nodes") or {}
            if any(n["displayName"] == "approve" and n["phase"] == "Running"
                   for n in nodes.values()):
                break
            assert time.monotonic() < deadline, nodes
            time.sleep(0.2)

        res = run(env, "resume", name, "-p", "approverr=ada")
        assert res.returncode == 2, (res.stdout, res.stderr)
        assert "'approverr'" in res.stderr and "Traceback" not in res.stderr
        res = run(env, "resume", name, "-p", "fixed=y")  # an output not supplied at resume
        assert res.returncode == 2 and "'fixed'" in res.stderr and "supplied" in res.stderr
        resp = client.http.put(f"/runs/{name}/resume", json={"parameters": {"nope": "1"}})
        assert resp.status_code == 400 and "'nope'" in resp.json()["error"]["message"]
        resp = client.http.put(f"/runs/{name}/resume", json={"parameters": {"approver": 3}})
        assert 400 <= resp.status_code < 500  # values are strings
        with pytest.raises(UserError, match="'nope'"):  # the client raises the 4xx
            client.resume(name, {"nope": "1"})
        # refused requests changed nothing: the step still waits
        nodes = client.get_run(name)["status"]["nodes"]
        assert [n["phase"] for n in nodes.values() if n["displayName"] == "approve"] == \
            ["Running"]

    res = run(env, "resume", name, "-p", "approver=ada lovelace")
    assert (res.returncode, res.stdout.strip()) == (0, f"workflow {name} resumed"), res.stderr
    res = run(env, "wait", name)
    assert res.returncode == 0, (res.stdout, res.stderr)
    got = json.loads(run(env, "get", name, "-o", "json").stdout)
    approve = next(n for n in got["status"]["nodes"].values() if n["displayName"] == "approve")
    assert {p["name"]: p["value"] for p in approve["outputs"]["parameters"]} == \
        {"approver": "ada lovelace", "environment": "staging", "fixed": "x"}
    assert run(env, "logs", name, "release").stdout.strip() == \
        "approved by ada lovelace for staging"
    assert list(client_home.iterdir()) == []
