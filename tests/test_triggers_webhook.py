"""Webhook triggers (RELIABILITY D-3) through a real ``chute server`` process, on a SQLite
file and on PostgreSQL: one delivery sent 5x at once makes exactly one run; a bad or
missing signature is a 401 JSON error and makes nothing; payload fields become workflow
parameters; ping and filtered events make no run."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.fixtures.postgres import postgres_server, postgres_url  # noqa: F401
from tests.fixtures.server import free_port
from tests.test_server_cli import _start, _stop

TOKEN = "test-token-for-webhooks-0123456789abcdef"
SECRET = b"It's a Secret to Everybody"
TEMPLATE = """\
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: build}
spec:
  entrypoint: main
  arguments:
    parameters:
    - {name: ref}
    - {name: repo}
    - {name: event, value: none}
    - {name: first-commit, value: none}
  templates:
  - name: main
    container: {image: busybox, command: [echo, "{{workflow.parameters.ref}}"]}
"""
HOOK = """\
apiVersion: chute.dev/v1alpha1
kind: WebhookTrigger
metadata: {name: github-push}
spec:
  webhookSecret: {name: github, key: secret}
  events: [push]
  workflowTemplateRef: {name: build}
  parameters:
  - {name: ref, src: {dataKey: body.ref}}
  - {name: repo, src: {dataKey: body.repository.full_name}}
  - {name: event, src: {dataKey: header.x-github-event}}
  - {name: first-commit, src: {dataKey: body.commits.0, value: none}}
"""
PAYLOAD = {"ref": "refs/heads/main", "repository": {"full_name": "octo/chute"},
           "commits": [{"id": "abc", "n": 1}]}


def sign(body: bytes, secret: bytes = SECRET) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


@pytest.fixture(params=["sqlite", "postgres"])
def hook_server(request, tmp_path):
    """A ``chute server`` (no controller) with the secret, template and webhook made."""
    from chute.config import load_settings
    from chute.secrets import SecretStore

    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUTE_")}
    env.update(CHUTE_HOME=str(tmp_path / "home"), CHUTE_TOKEN=TOKEN)
    if request.param == "postgres":
        env["CHUTE_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    settings = load_settings({k: v for k, v in env.items() if k.startswith("CHUTE_")}).ensure()
    SecretStore(settings.secrets_dir).create("github", {"secret": SECRET})
    port = free_port()
    proc, lines = _start(port, env, "--no-controller")
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url + "/api/v1", timeout=60,
                          headers={"Authorization": f"Bearer {TOKEN}"}) as api:
            assert api.post("/workflow-templates", json={"yaml": TEMPLATE}).status_code == 201
            made = api.post("/webhooks", json={"yaml": HOOK})
            assert made.status_code == 201, made.text
            assert made.json()["url"] == "/webhooks/github-push"
            yield url, api, lines
    finally:
        _stop(proc)


def deliver(url: str, body: bytes, delivery: str | None, *, signature: str | None = None,
            event: str = "push", name: str = "github-push") -> httpx.Response:
    headers = {"Content-Type": "application/json", "X-GitHub-Event": event}
    if delivery is not None:
        headers["X-GitHub-Delivery"] = delivery
    if signature is not False:
        headers["X-Hub-Signature-256"] = signature or sign(body)
    return httpx.post(f"{url}/webhooks/{name}", content=body, headers=headers, timeout=60)


def _all_at_once(n: int, fn) -> list:
    gate = threading.Barrier(n)

    def one(_):
        gate.wait()
        return fn()
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_one_delivery_sent_five_times_at_once_makes_one_run(hook_server):
    url, api, lines = hook_server
    body = json.dumps(PAYLOAD).encode()
    results = _all_at_once(5, lambda: deliver(url, body, "72d3162e-cc78-11e3-81ab-4c9367dc0958"))
    assert sorted(r.status_code for r in results) == [200] * 4 + [201], [r.text for r in results]
    assert len({r.json()["workflow"] for r in results}) == 1
    assert all(r.headers["Idempotent-Replayed"] == "true" for r in results
               if r.status_code == 200)
    runs = api.get("/runs").json()
    assert runs["total"] == 1
    run = api.get(f"/runs/{results[0].json()['workflow']}").json()
    assert run["metadata"]["name"].startswith("build-")
    assert run["metadata"]["labels"]["chute.dev/webhook"] == "github-push"
    params = {p["name"]: p.get("value")
              for p in run["spec"].get("arguments", {}).get("parameters", [])}
    stored = run["status"].get("storedParameters") or params
    assert stored["ref"] == "refs/heads/main" and stored["repo"] == "octo/chute"
    assert stored["event"] == "push"
    assert json.loads(stored["first-commit"]) == {"id": "abc", "n": 1}
    # another delivery is another run; the first one replayed still finds its own
    assert deliver(url, body, "second").status_code == 201
    assert deliver(url, body, "72d3162e-cc78-11e3-81ab-4c9367dc0958").status_code == 200
    assert api.get("/runs").json()["total"] == 2
    assert not [ln for ln in lines if "Traceback" in ln]


@pytest.mark.parametrize("hook_server", ["sqlite"], indirect=True)
def test_bad_signatures_odd_deliveries_and_bad_definitions(hook_server):
    url, api, _ = hook_server
    body = json.dumps(PAYLOAD).encode()
    for bad in (sign(body, b"wrong secret"), sign(body + b" "), "sha1=" + "0" * 40,
                sign(body)[:-1] + "0" if not sign(body).endswith("0") else sign(body)[:-1] + "1"):
        r = deliver(url, body, "d-bad", signature=bad)
        assert r.status_code == 401, r.text
        assert r.json()["error"]["code"] == "unauthorized"
        assert "X-Hub-Signature-256" in r.json()["error"]["message"]
    r = deliver(url, body, "d-unsigned", signature=False)
    assert r.status_code == 401 and "X-Hub-Signature-256" in r.json()["error"]["message"]
    # signed, but: no delivery id; not JSON; a required field absent; unknown webhook
    r = deliver(url, body, None)
    assert r.status_code == 400 and "X-GitHub-Delivery" in r.json()["error"]["message"]
    r = deliver(url, b"{not json", "d-1")
    assert r.status_code == 400 and "body" in r.json()["error"]["message"]
    r = deliver(url, json.dumps({"ref": "x"}).encode(), "d-2")
    assert r.status_code == 400 and "body.repository.full_name" in r.json()["error"]["message"]
    # a webhook that does not exist: the same 401 as a wrong signature (names stay unknown)
    r = deliver(url, body, "d-3", name="nope")
    assert r.status_code == 401
    assert r.json() == deliver(url, body, "d-3", signature=sign(body, b"x")).json()
    # GitHub's ping and an event not in spec.events: acknowledged, no run
    assert deliver(url, b'{"zen": "hi"}', "d-4", event="ping").json() == {"ignored": "ping"}
    r = deliver(url, body, "d-5", event="issues")
    assert r.status_code == 202 and "issues" in r.json()["ignored"]
    # the same delivery id with another payload is refused by name
    assert deliver(url, body, "d-6").status_code == 201
    other = json.dumps({**PAYLOAD, "ref": "refs/heads/dev"}).encode()
    r = deliver(url, other, "d-6")
    assert r.status_code == 409 and "webhook:github-push:d-6" in r.json()["error"]["message"]
    assert api.get("/runs").json()["total"] == 1
    # managing webhooks still needs the token; only POST deliveries bypass it
    assert httpx.get(f"{url}/webhooks/github-push").status_code in (401, 405)
    assert httpx.get(f"{url}/api/v1/webhooks").status_code == 401
    assert httpx.post(f"{url}/api/v1/webhooks", json={"yaml": HOOK}).status_code == 401
    # definitions are checked by place when they are created
    r = api.post("/webhooks", json={"yaml": HOOK})
    assert r.status_code == 409 and "github-push" in r.json()["error"]["message"]
    bad = HOOK.replace("github-push", "x2")
    cases = [
        (bad.replace("{name: github, key: secret}", "{name: missing, key: secret}"), 404,
         "missing"),
        (bad.replace("workflowTemplateRef: {name: build}", "workflowTemplateRef: {name: nope}"),
         404, "nope"),
        (bad.replace("name: ref, src", "name: not-a-param, src"), 400, "not-a-param"),
        (bad.replace("dataKey: body.ref", "datakey: body.ref"), 400, "datakey"),
        (bad.replace("  workflowTemplateRef: {name: build}\n", ""), 400, "workflowTemplateRef"),
    ]
    for text, status, word in cases:
        r = api.post("/webhooks", json={"yaml": text})
        assert r.status_code == status, (word, r.text)
        assert word in r.text, (word, r.text)
    assert [h["metadata"]["name"] for h in api.get("/webhooks").json()["items"]] == [
        "github-push"]
    assert api.delete("/webhooks/github-push").status_code == 204
    assert api.get("/webhooks/github-push").status_code == 404


@pytest.mark.heavy
def test_heavy_twenty_deliveries_each_sent_ten_times_at_once(hook_server):
    """D-3 at scale: 20 delivery ids, each sent by 10 clients at the same moment."""
    url, api, lines = hook_server
    body = json.dumps(PAYLOAD).encode()
    for k in range(20):
        results = _all_at_once(10, lambda k=k: deliver(url, body, f"heavy-{k}"))
        assert sorted(r.status_code for r in results) == [200] * 9 + [201]
        assert len({r.json()["workflow"] for r in results}) == 1
    assert api.get("/runs").json()["total"] == 20
    assert not [ln for ln in lines if "Traceback" in ln]
