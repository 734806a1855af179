"""Secrets into steps (issue 8 item 6, S-3): ``env[].valueFrom.secretKeyRef`` resolves from
the local secret store at launch, and the canary value never reaches a sink.

Real CLI, real SQLite file, real step processes; the canary is grepped in every form
(raw, base64, URL-encoded, hex) in the stored logs, ``chute get -o json``, every table
of the database, every file kept under the steps and logs directories (``launch.json``
included) and the controller's log records.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import sqlite3
from urllib.parse import quote

import pytest

from chute.engine.secrets_env import mask_text, resolve_env, secret_env_refs, secret_forms
from chute.errors import ChuteError
from tests.fixtures.cli import run  # noqa: F401 - the `run` fixture

LEAKY = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: leaky}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: show, template: show}
    - - {name: boom, template: boom, continueOn: {failed: true}}
    - - {name: dump, template: dump, continueOn: {failed: true}}
  - name: show
    script:
      image: python:3
      command: [python]
      env:
      - {name: PLAIN, value: visible}
      - name: TOKEN
        valueFrom: {secretKeyRef: {name: canary, key: token}}
      source: |
        import base64, os, urllib.parse
        t = os.environ["TOKEN"]
        print("length", len(t), os.environ["PLAIN"])
        print("raw", t)
        print("b64", base64.b64encode(t.encode()).decode())
        print("url", urllib.parse.quote(t, safe=""))
        print("hex", t.encode().hex())
        open("/tmp/out.txt", "w").write("param " + t + " " + t.encode().hex())
    outputs:
      parameters:
      - name: leaked
        valueFrom: {path: /tmp/out.txt}
  - name: boom
    script:
      image: python:3
      command: [python]
      env:
      - name: TOKEN
        valueFrom: {secretKeyRef: {name: canary, key: token}}
      source: |
        import os
        raise RuntimeError("bad token " + os.environ["TOKEN"])
  - name: dump
    container:
      image: alpine
      command: [sh, -c]
      args: ['env; echo "failing with $TOKEN" >&2; exit 3']
      env:
      - name: TOKEN
        valueFrom: {secretKeyRef: {name: canary, key: token}}
"""

MISSING = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: missing}
spec:
  entrypoint: main
  templates:
  - name: main
    container:
      image: alpine
      command: [sh, -c, "echo should-not-run"]
      env:
      - name: TOKEN
        valueFrom: {secretKeyRef: {name: canary, key: nokey}}
"""


def _forms(canary: str) -> list[str]:
    raw = canary.encode()
    return [canary, base64.b64encode(raw).decode(), quote(canary, safe=""), raw.hex()]


def test_secret_forms_and_masking():
    forms = secret_forms("a/b+c d")
    for f in ("a/b+c d", "YS9iK2MgZA==", "a%2Fb%2Bc%20d", "612f622b632064"):
        assert f in forms
    assert mask_text("x a/b+c d y 612f622b632064", forms) == "x *** y ***"
    assert secret_forms("") == []


def test_refs_carry_names_never_values(chute_home):
    from chute.secrets import SecretStore

    SecretStore().create("db", {"password": "hunter2-xyz"})
    refs = secret_env_refs([{"name": "A", "value": "plain"},
                            {"name": "P", "valueFrom": {"secretKeyRef": {"name": "db",
                                                                         "key": "password"}}}])
    assert refs == [{"env": "P", "name": "db", "key": "password", "optional": False}]
    env, masked = resolve_env(refs)
    assert env == {"P": "hunter2-xyz"} and "hunter2-xyz" in masked
    with pytest.raises(ChuteError) as info:
        resolve_env([{"env": "P", "name": "db", "key": "nope", "optional": False}])
    assert "'db'" in str(info.value) and "'nope'" in str(info.value)
    assert "hunter2" not in str(info.value)
    # optional and missing: left unset, as Kubernetes does
    assert resolve_env([{"env": "P", "name": "gone", "key": "k", "optional": True}])[0] == {}


def test_missing_secret_key_fails_the_node_naming_it(run, tmp_path):
    from chute.secrets import SecretStore

    SecretStore().create("canary", {"token": "some-value-123"})
    f = tmp_path / "m.yaml"
    f.write_text(MISSING)
    code, out, _ = run("submit", str(f), "--wait")
    assert code != 0
    code, out, _ = run("get", "missing", "-o", "json")
    doc = json.loads(out)
    node = doc["status"]["nodes"]["missing"]
    assert node["phase"] in ("Error", "Failed")
    assert "canary" in node["message"] and "nokey" in node["message"]
    assert "some-value-123" not in out


def test_canary_never_reaches_a_sink(run, tmp_path, chute_home, caplog):
    """S-3 with a random 32-byte canary (URL-unsafe characters, so every form differs)."""
    from chute.config import load_settings
    from chute.secrets import SecretStore

    caplog.set_level(logging.DEBUG)
    canary = secrets.token_urlsafe(32) + "/+=:"
    SecretStore().create("canary", {"token": canary})
    f = tmp_path / "leaky.yaml"
    f.write_text(LEAKY)
    run("submit", str(f), "--wait")
    _, out, _ = run("get", "leaky", "-o", "json")
    doc = json.loads(out)
    nodes = {n["displayName"]: n for n in doc["status"]["nodes"].values()}
    # the secret did reach the step (its length is printed), and the steps ran
    assert nodes["show"]["phase"] == "Succeeded", nodes["show"]
    assert f"length {len(canary)} visible" in nodes["show"]["outputs"]["result"]
    assert nodes["boom"]["phase"] == "Failed" and nodes["dump"]["phase"] == "Failed"
    leaked = next(p for p in nodes["show"]["outputs"]["parameters"] if p["name"] == "leaked")
    assert leaked["value"] == "param *** ***"

    settings = load_settings()
    bodies = {"get -o json": out}
    _, logs, _ = run("logs", "leaky")
    bodies["chute logs"] = logs
    assert "raw ***" in logs and "hex ***" in logs and "bad token ***" in logs
    db = sqlite3.connect(str(settings.home / "chute.db"))
    bodies["db"] = "\n".join(db.iterdump())
    db.close()
    kept = 0
    for root in (settings.logs_dir, settings.steps_dir):
        for p in root.rglob("*"):
            if p.is_file():
                kept += 1
                bodies[str(p)] = p.read_bytes().decode("utf-8", "replace")
    assert kept >= 6  # logs, launch.json, status.json, stdout, script, output file
    bodies["controller log"] = "\n".join(r.getMessage() + (r.exc_text or "")
                                         for r in caplog.records)
    hits = [(form, where) for where, text in bodies.items() for form in _forms(canary)
            if form in text]
    assert not hits, f"canary found in {len(hits)} sinks: {hits[:5]}"


SDK_PIPELINE = '''
from chute.dsl import component, pipeline


@component(secrets={"TOKEN": ("canary", "token")})
def leak() -> str:
    import os
    t = os.environ["TOKEN"]
    print("length", len(t), "token", t, t.encode().hex())
    return t


@pipeline(name="sdk-leak")
def sdk_leak():
    leak()
'''


def test_sdk_component_secrets_reach_a_warm_step_masked(chute_home, tmp_path):
    """An SDK step (warm worker) gets its ``secrets=`` from the store; its log and its
    return value (an output parameter) show ``***``."""
    import io

    from rich.console import Console

    from chute.cli.run import run_pipeline
    from chute.config import load_settings
    from chute.secrets import SecretStore

    canary = secrets.token_urlsafe(32) + "/+="
    SecretStore().create("canary", {"token": canary})
    f = tmp_path / "sdk_leak.py"
    f.write_text(SDK_PIPELINE)
    out = Console(file=io.StringIO(), width=200)
    row, nodes = run_pipeline(str(f), {}, timeout=120, console=Console(file=io.StringIO()),
                              out=out, live=False)
    leak = next(n for n in nodes if n.display_name == "leak")
    assert row.phase == "Succeeded", leak.message
    assert f"length {len(canary)} token *** ***" in leak.outputs["result"]
    assert {"name": "Output", "value": "***"} in leak.outputs["parameters"]
    settings = load_settings()
    texts = [out.file.getvalue()]
    for root in (settings.logs_dir, settings.steps_dir):
        texts += [p.read_bytes().decode("utf-8", "replace") for p in root.rglob("*")
                  if p.is_file()]
    db = sqlite3.connect(str(settings.home / "chute.db"))
    texts.append("\n".join(db.iterdump()))
    db.close()
    assert not [f for t in texts for f in _forms(canary) if f in t]


def test_after_attempt_masks_from_launch_json_even_after_a_restart(tmp_path):
    """A controller that adopted a running step has no LaunchRequest: the forms to mask
    come from the attempt's launch.json; files are replaced, not rewritten in place."""
    import os as _os
    from types import SimpleNamespace

    from chute.engine.secrets_env import after_attempt

    step = tmp_path / "step"
    step.mkdir()
    value = "tok/" + secrets.token_hex(8)
    (step / "launch.json").write_text(json.dumps(
        {"env": {"T": value}, "secret_values": secret_forms(value)}))
    out = step / "root" / "tmp" / "out.txt"
    out.parent.mkdir(parents=True)
    out.write_text(f"v={value}")
    linked = tmp_path / "repo-object"
    _os.link(out, linked)  # as a local repository stores an artifact: a hard link
    files = {"/tmp/out.txt": f"v={value}"}
    # a request without secret references: nothing read, nothing changed
    assert after_attempt(step, files, SimpleNamespace(secret_env=[])) == files
    assert after_attempt(step, files) == {"/tmp/out.txt": "v=***"}
    assert out.read_text() == "v=***" and value not in (step / "launch.json").read_text()
    assert linked.read_text() == f"v={value}"  # the stored artifact keeps its bytes
