"""``chute cron ...`` and ``chute webhook ...`` on the local store and through a server
(CHUTE_SERVER), exit 2 on bad input; and the schedules really ticked by a standalone
``chute controller`` and by the server's embedded controller."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime

import httpx

from tests.fixtures.cli import run  # noqa: F401
from tests.fixtures.server import free_port, running_api  # noqa: F401
from tests.test_server_cli import _start, _stop

TOKEN = "test-token-for-cron-cli-0123456789abcdef"
CRON = """\
apiVersion: argoproj.io/v1alpha1
kind: CronWorkflow
metadata:
  name: {name}
  annotations: {{chute.dev/catch-up: "2"}}
spec:
  schedule: "{schedule}"
  concurrencyPolicy: Forbid
  startingDeadlineSeconds: 300
  workflowSpec:
    entrypoint: main
    templates:
    - name: main
      container: {{image: busybox, command: [echo, tick]}}
"""


DATA_TRIGGER = """\
apiVersion: chute.dev/v1alpha1
kind: DataTrigger
metadata: {{name: arrivals}}
spec:
  path: {path}
  pathRegexp: '.*\\.csv'
  settleSeconds: 0
  pollSeconds: 1
  workflow:
    apiVersion: argoproj.io/v1alpha1
    kind: Workflow
    metadata: {{generateName: arrivals-}}
    spec:
      entrypoint: main
      arguments: {{parameters: [{{name: file}}]}}
      templates:
      - name: main
        container: {{image: busybox, command: [echo, "{{{{workflow.parameters.file}}}}"]}}
  parameters:
  - {{name: file, src: {{dataKey: body.path}}}}
"""


def _cron_file(tmp_path, name: str = "nightly", schedule: str = "0 3 * * *"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(CRON.format(name=name, schedule=schedule))
    return path


def _cron_roundtrip(call, tmp_path, *, every_error: bool = True) -> None:
    """create, list, get, suspend, resume, delete and the bad inputs, through ``call``."""
    rc, out, err = call("cron", "create", str(_cron_file(tmp_path)))
    assert rc == 0, err
    assert "nightly" in out and "0 3 * * *" in out and "Forbid" in out
    assert "NextScheduledTime" in out and "CatchUp:" in out
    rc, out, _ = call("cron", "list")
    assert rc == 0 and "nightly" in out.splitlines()[1] and "false" in out
    rc, out, _ = call("cron", "get", "nightly", "-o", "json")
    doc = json.loads(out)
    assert doc["kind"] == "CronWorkflow" and doc["status"]["active"] == []
    nxt = datetime.fromisoformat(doc["status"]["nextScheduledTime"])
    assert nxt.timestamp() > time.time() - 5  # 03:00 of the machine's zone, next time
    assert (nxt.astimezone().hour, nxt.minute) == (3, 0)
    assert call("cron", "suspend", "nightly")[:2] == (0, "CronWorkflow 'nightly' suspended\n")
    rc, out, _ = call("cron", "get", "nightly", "-o", "json")
    assert json.loads(out)["spec"]["suspend"] is True
    assert "nextScheduledTime" not in json.loads(out)["status"]
    assert call("cron", "resume", "nightly")[0] == 0
    newer = _cron_file(tmp_path, "nightly", "30 4 * * *")
    rc, out, err = call("cron", "update", str(newer), "-o", "json")
    assert rc == 0, err
    assert json.loads(out)["spec"]["schedule"] == "30 4 * * *"
    assert json.loads(out)["metadata"]["uid"] == doc["metadata"]["uid"]
    # user errors: exit 2, one message naming the place
    rc, _, err = call("cron", "create", str(_cron_file(tmp_path, "bad", "61 * * * *")))
    assert rc == 2 and "spec.schedule" in err and "61 * * * *" in err
    rc, _, err = call("cron", "get", "nope")
    assert rc == 2 and "nope" in err
    rc, _, err = call("cron", "update", str(_cron_file(tmp_path, "nope")))
    assert rc == 2 and "nope" in err
    if every_error:
        rc, _, err = call("cron", "create", str(_cron_file(tmp_path)))
        assert rc == 2 and "already exists" in err
        wf = tmp_path / "wf.yaml"
        wf.write_text(CRON.replace("CronWorkflow", "Workflow").split("spec:")[0]
                      + "spec:\n  entrypoint: m\n  templates: [{name: m, container: "
                      "{image: x, command: [true]}}]\n")
        assert call("cron", "create", str(wf))[0] == 2
        for verb in ("delete", "suspend", "resume"):
            rc, _, err = call("cron", verb, "nope")
            assert rc == 2 and "nope" in err, (verb, err)
        assert call("cron", "list", "-o", "wide")[0] == 2
    assert call("cron", "delete", "nightly")[0] == 0
    assert call("cron", "list", "-o", "name")[1] == ""


def test_cron_commands_on_the_local_store(run, tmp_path):
    _cron_roundtrip(run, tmp_path)


def test_cron_and_webhook_commands_through_the_server(run, tmp_path, monkeypatch, chute_home):
    from chute.config import load_settings
    from chute.secrets import SecretStore

    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUTE_")}
    env.update(CHUTE_HOME=str(tmp_path / "server-home"), CHUTE_TOKEN=TOKEN)
    settings = load_settings({"CHUTE_HOME": env["CHUTE_HOME"]}).ensure()
    SecretStore(settings.secrets_dir).create("hooks", {"key": "k3y"})
    port = free_port()
    proc, _ = _start(port, env, "--no-controller")
    try:
        monkeypatch.setenv("CHUTE_SERVER", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("CHUTE_TOKEN", TOKEN)
        _cron_roundtrip(run, tmp_path, every_error=False)
        hook = tmp_path / "hook.yaml"
        hook.write_text("""\
apiVersion: chute.dev/v1alpha1
kind: WebhookTrigger
metadata: {name: on-push}
spec:
  webhookSecret: {name: hooks, key: key}
  workflow:
    apiVersion: argoproj.io/v1alpha1
    kind: Workflow
    metadata: {generateName: pushed-}
    spec:
      entrypoint: main
      arguments: {parameters: [{name: ref}]}
      templates:
      - name: main
        container: {image: busybox, command: [echo, "{{workflow.parameters.ref}}"]}
  parameters:
  - {name: ref, src: {dataKey: body.ref}}
""")
        rc, out, err = run("webhook", "create", str(hook))
        assert rc == 0, err
        assert "POST /webhooks/on-push" in out and "body.ref" in out
        assert run("webhook", "list", "-o", "name")[1].split() == ["on-push"]
        body = b'{"ref": "refs/tags/v1"}'
        import hashlib
        import hmac

        sig = "sha256=" + hmac.new(b"k3y", body, hashlib.sha256).hexdigest()
        r = httpx.post(f"http://127.0.0.1:{port}/webhooks/on-push", content=body,
                       headers={"X-Hub-Signature-256": sig, "X-Chute-Delivery": "1"})
        assert r.status_code == 201, r.text
        assert r.json()["workflow"].startswith("pushed-")
        assert run("webhook", "delete", "on-push")[0] == 0
        rc, _, err = run("webhook", "get", "on-push")
        assert rc == 2 and "on-push" in err
    finally:
        _stop(proc)


def test_webhook_create_errors_locally(run, tmp_path):
    hook = tmp_path / "hook.yaml"
    hook.write_text("apiVersion: chute.dev/v1alpha1\nkind: WebhookTrigger\n"
                    "metadata: {name: h}\nspec: {webhookSecret: {name: s, key: k},"
                    " workflowTemplateRef: {name: t}, bogus: 1}\n")
    rc, _, err = run("webhook", "create", str(hook))
    assert rc == 2 and "spec.bogus" in err
    rc, _, err = run("webhook", "create", str(tmp_path / "missing.yaml"))
    assert rc == 2


def _wait(pred, timeout: float):
    end = time.time() + timeout
    while time.time() < end:
        got = pred()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_the_standalone_controller_ticks_the_schedules(run, tmp_path, chute_home):
    """A real ``chute controller`` runs an ``@every 1s`` CronWorkflow's slots, one run each,
    named ``<cron>-<unix slot>``, and they succeed; after it stops nothing more runs."""
    from chute.config import load_settings
    from chute.store import queries as q
    from chute.store.db import open_store

    assert run("cron", "create", str(_cron_file(tmp_path, "ticker", "@every 1s")))[0] == 0
    env = {**os.environ, "CHUTE_HOME": str(chute_home)}
    proc = subprocess.Popen([sys.executable, "-m", "chute.cli.app", "controller"], env=env,
                            start_new_session=True)
    store = open_store(load_settings())
    try:
        def done():
            with store.read() as s:
                rows = q.list_workflows(s)
            ok = [r for r in rows if r.phase == "Succeeded"]
            return rows if ok and len(rows) >= 2 else None
        rows = _wait(done, 40)
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    with store.read() as s:
        rows = q.list_workflows(s)
    names = [r.name for r in rows]
    assert len(set(names)) == len(names) and all(n.startswith("ticker-") for n in names)
    assert all(r.labels["workflows.argoproj.io/cron-workflow"] == "ticker" for r in rows)
    for r in rows:  # named by the slot it ran for, as Argo names them
        stamp = r.spec["metadata"]["annotations"]["workflows.argoproj.io/scheduled-time"]
        assert int(datetime.fromisoformat(stamp).timestamp()) == int(r.name.split("-")[1])
    store.dispose()


def test_trigger_commands_on_the_local_store(run, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    spec = tmp_path / "trigger.yaml"
    spec.write_text(DATA_TRIGGER.format(path=inbox))
    rc, out, err = run("trigger", "create", str(spec))
    assert rc == 0, err
    assert "DataTrigger" in out and f"new files in {inbox} matching .*\\.csv" in out
    assert run("trigger", "list", "-o", "name")[1].split() == ["arrivals"]
    rc, out, _ = run("trigger", "get", "arrivals", "-o", "json")
    assert json.loads(out)["status"]["state"]["after"] > 0
    rc, _, err = run("trigger", "create", str(spec))
    assert rc == 2 and "already exists" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text(DATA_TRIGGER.format(path="not/absolute"))
    rc, _, err = run("trigger", "create", str(bad))
    assert rc == 2 and "spec.path" in err
    assert run("trigger", "delete", "arrivals")[0] == 0
    rc, _, err = run("trigger", "get", "arrivals")
    assert rc == 2 and "arrivals" in err


def test_the_servers_embedded_controller_ticks_the_schedules(running_api, tmp_path):
    made = running_api.post("/api/v1/cron-workflows", json={
        "yaml": CRON.format(name="embedded", schedule="@every 1s")})
    assert made.status_code == 201, made.text
    assert made.json()["status"]["nextScheduledTime"]

    def succeeded():
        runs = running_api.get("/api/v1/runs").json()["items"]
        return [r for r in runs if r["phase"] == "Succeeded"] or None
    (first, *_) = _wait(succeeded, 40)
    assert first["name"].startswith("embedded-")
    got = running_api.get("/api/v1/cron-workflows/embedded").json()
    assert got["status"]["lastScheduledTime"]
    assert running_api.delete("/api/v1/cron-workflows/embedded").status_code == 204
    # a DataTrigger polled by the same loop: a new file makes a run that succeeds
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    made = running_api.post("/api/v1/triggers", json={"yaml": DATA_TRIGGER.format(path=inbox)})
    assert made.status_code == 201, made.text
    (inbox / "batch.csv").write_text("1,2\n")  # after the trigger's creation; settled at once

    def ingested():
        runs = running_api.get("/api/v1/runs").json()["items"]
        return [r for r in runs if r["name"].startswith("arrivals-")
                and r["phase"] == "Succeeded"] or None
    (run_doc,) = _wait(ingested, 40)
    params = running_api.get(f"/api/v1/runs/{run_doc['name']}").json()["status"][
        "storedParameters"]
    assert params == {"file": "batch.csv"}
    assert running_api.get("/api/v1/triggers/arrivals").json()["status"]["polledAt"]
    bad = running_api.post("/api/v1/cron-workflows", json={
        "yaml": CRON.format(name="bad", schedule="every day")})
    assert bad.status_code == 400 and bad.json()["error"]["path"] == "spec.schedule"
    assert running_api.get("/api/v1/cron-workflows/nope").status_code == 404
