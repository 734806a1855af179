"""Run actions are routed to the engine's functions, and only those that exist get routes."""

from __future__ import annotations

import importlib
import sys
import types

import pytest

pytest_plugins = ["tests.fixtures.server"]


@pytest.fixture
def fake_engine_ops(monkeypatch):
    """A stand-in ``chute.engine.ops`` with suspend/resume and a mis-shaped stop."""
    calls = []
    mod = types.ModuleType("chute.engine.ops")

    def suspend(store, uid, message=None):
        calls.append(("suspend", uid, message))

    def resume(store, uid):
        calls.append(("resume", uid))

    def stop(name):  # wrong convention: must not get a route
        calls.append(("stop", name))

    mod.suspend, mod.resume, mod.stop = suspend, resume, stop
    monkeypatch.setitem(sys.modules, "chute.engine.ops", mod)
    import chute.server.routes_runs as routes_runs

    importlib.reload(routes_runs)
    yield calls
    monkeypatch.delitem(sys.modules, "chute.engine.ops")
    importlib.reload(routes_runs)


def test_actions_call_the_engine(fake_engine_ops, chute_home, monkeypatch):
    from fastapi.testclient import TestClient

    from chute.config import load_settings
    from chute.server.app import create_app
    from tests.fixtures.server import PIPELINE_YAML

    monkeypatch.setenv("CHUTE_TOKEN", "t" * 30)
    app = create_app(load_settings())
    with TestClient(app, headers={"Authorization": "Bearer " + "t" * 30}) as api:
        assert api.get("/api/v1/run-actions").json()["actions"] == ["suspend", "resume"]
        run = api.post("/api/v1/runs", json={"yaml": PIPELINE_YAML}).json()
        name, uid = run["metadata"]["name"], run["metadata"]["uid"]
        resp = api.put(f"/api/v1/runs/{name}/suspend", json={"message": "wait"})
        assert resp.status_code == 200 and resp.json()["metadata"]["name"] == name
        assert api.put(f"/api/v1/runs/{name}/resume").status_code == 200
        assert api.put(f"/api/v1/runs/{name}/stop").status_code in (404, 405)
        assert api.put("/api/v1/runs/nope/suspend").status_code == 404
    assert fake_engine_ops == [("suspend", uid, "wait"), ("resume", uid)]
