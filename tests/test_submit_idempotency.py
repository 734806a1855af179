"""D-3: idempotent submission. The same submit replayed 5x at once under one idempotency
key creates exactly one run — directly against the store (SQLite and PostgreSQL), through
the real API server (``Idempotency-Key`` header) and through ``chute submit
--idempotency-key`` (embedded and with CHUTE_SERVER)."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from chute.errors import ConflictError, UserError
from tests.fixtures.postgres import postgres_server, postgres_url  # noqa: F401
from tests.fixtures.server import free_port
from tests.test_server_cli import _start, _stop

TOKEN = "test-token-for-idempotent-submit-0123456789"
REPLAYS = 5
SPEC = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: idem-}
spec:
  entrypoint: main
  arguments: {parameters: [{name: msg, value: hi}]}
  templates:
  - name: main
    container: {image: busybox, command: [echo, "{{workflow.parameters.msg}}"]}
"""


@pytest.fixture(params=["sqlite", "postgres"])
def db_env(request, tmp_path) -> dict[str, str]:
    """CHUTE_ settings of a fresh store: the SQLite file in a new home, or PostgreSQL."""
    env = {"CHUTE_HOME": str(tmp_path / "home")}
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
        env["CHUTE_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    return env


def _all_at_once(n: int, fn) -> list:
    """Call ``fn()`` from ``n`` threads released together; results (or exceptions)."""
    gate = threading.Barrier(n)

    def one(_):
        gate.wait()
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - returned for the test to inspect
            return exc
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_concurrent_replays_against_the_store_create_one_run_per_key(db_env):
    from chute.config import load_settings
    from chute.engine.submit import submit_once
    from chute.spec.loader import load_documents
    from chute.store import queries as q
    from chute.store.db import open_store

    settings = load_settings(db_env).ensure()
    stores = [open_store(settings) for _ in range(REPLAYS)]  # one engine each, as processes
    wf = load_documents(SPEC)[0]
    for key in ("k-1", "k-2", "k-3"):
        stores_iter = iter(stores)
        lock = threading.Lock()

        def submit_one():
            with lock:
                store = next(stores_iter)
            return submit_once(store, wf, {"msg": "x"}, idempotency_key=key)

        results = _all_at_once(REPLAYS, submit_one)
        errors = [r for r in results if isinstance(r, Exception)]
        assert errors == []
        assert sorted(created for _, created in results) == [False] * (REPLAYS - 1) + [True]
        assert len({row.uid for row, _ in results}) == 1
        assert len({row.name for row, _ in results}) == 1
    with stores[0].read() as s:
        rows = q.list_workflows(s)
    assert sorted(r.idempotency_key for r in rows) == ["k-1", "k-2", "k-3"]
    # the same key asking for something else is refused by name; nothing is written
    with pytest.raises(ConflictError, match="Idempotency-Key 'k-1'.*different request"):
        submit_once(stores[0], wf, {"msg": "other"}, idempotency_key="k-1")
    with pytest.raises(UserError, match="Idempotency-Key"):
        submit_once(stores[0], wf, {}, idempotency_key="bad\nkey")
    row, created = submit_once(stores[0], wf, {"msg": "x"})  # no key: always a new run
    assert created and row.idempotency_key is None
    with stores[0].read() as s:
        assert len(q.list_workflows(s)) == 4
    for store in stores:
        store.dispose()


@pytest.fixture
def server(tmp_path, db_env):
    """A ``chute server`` process (no controller) on the store of ``db_env``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUTE_")}
    env.update(db_env, CHUTE_TOKEN=TOKEN)
    port = free_port()
    proc, lines = _start(port, env, "--no-controller")
    try:
        yield f"http://127.0.0.1:{port}", env, lines
    finally:
        _stop(proc)


def test_concurrent_replays_through_the_api_create_one_run(server):
    url, _, lines = server
    body = {"yaml": SPEC, "parameters": {"msg": "api"}}
    with httpx.Client(base_url=url + "/api/v1", timeout=60,
                      headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        results = _all_at_once(REPLAYS, lambda: http.post(
            "/runs", json=body, headers={"Idempotency-Key": "delivery-42"}))
        assert sorted(r.status_code for r in results) == [200] * (REPLAYS - 1) + [201]
        assert {r.json()["metadata"]["name"] for r in results} == {
            results[0].json()["metadata"]["name"]}
        replayed = [r for r in results if r.status_code == 200]
        assert all(r.headers["Idempotent-Replayed"] == "true" for r in replayed)
        assert http.get("/runs").json()["total"] == 1
        other = http.post("/runs", json={**body, "parameters": {"msg": "changed"}},
                          headers={"Idempotency-Key": "delivery-42"})
        assert other.status_code == 409
        assert "delivery-42" in other.json()["error"]["message"]
        fresh = http.post("/runs", json=body, headers={"Idempotency-Key": "delivery-43"})
        assert fresh.status_code == 201
        assert http.get("/runs").json()["total"] == 2
    assert not [ln for ln in lines if "Traceback" in ln or "IntegrityError" in ln]


@pytest.fixture
def cli(monkeypatch, capsys):
    """``cli(env, *args)``: ``chute ARGS`` in this process with exactly ``env``'s CHUTE_
    settings; (exit code, stdout, stderr)."""
    from chute.cli.app import main

    def call(env: dict[str, str], *args: str) -> tuple[int, str, str]:
        with monkeypatch.context() as m:
            for k in [k for k in os.environ if k.startswith("CHUTE_")]:
                m.delenv(k)
            for k, v in env.items():
                m.setenv(k, v)
            capsys.readouterr()
            rc = main(list(args))
            out = capsys.readouterr()
        return rc, out.out, out.err
    return call


@pytest.mark.parametrize("db_env", ["sqlite"], indirect=True)
def test_cli_submit_with_a_key_embedded_and_through_the_server(server, cli, tmp_path):
    url, _, _ = server
    spec = tmp_path / "wf.yaml"
    spec.write_text(SPEC)
    local = {"CHUTE_HOME": str(tmp_path / "cli-home")}
    remote = {"CHUTE_HOME": str(tmp_path / "client-home"), "CHUTE_SERVER": url,
              "CHUTE_TOKEN": TOKEN}
    for env in (local, remote):
        rc1, first, err1 = cli(env, "submit", str(spec), "--idempotency-key", "cli-1")
        rc2, again, err2 = cli(env, "submit", str(spec), "--idempotency-key", "cli-1")
        assert rc1 == rc2 == 0, (err1, err2)
        assert first.strip() == again.strip() != ""
        rc, _, err = cli(env, "submit", str(spec), "-p", "msg=other", "--idempotency-key",
                         "cli-1")
        assert rc == 2 and "cli-1" in err, err
        _, listed, _ = cli(env, "list", "-o", "name")
        assert listed.split() == [first.strip()], listed
