"""The model registry through the API: list, versions, stage changes and their errors."""

from __future__ import annotations

pytest_plugins = ["tests.fixtures.server"]


def test_models_versions_and_promotion(server, api):
    from chute.ml import registry

    store = server.app.state.ctx.store
    with store.write() as s:
        registry.register_version(s, "fraud", artifact_uri="file:///m/1",
                                  metrics={"auc": 0.9})
        registry.register_version(s, "fraud", artifact_uri="file:///m/2",
                                  metrics={"auc": 0.95})
    models = api.get("/api/v1/models").json()["items"]
    assert [m["name"] for m in models] == ["fraud"] and models[0]["versions"] == 2
    versions = api.get("/api/v1/models/fraud/versions").json()["items"]
    assert [v["version"] for v in versions] == [2, 1]
    assert api.get("/api/v1/models/fraud/versions/latest").json()["metrics"] == {"auc": 0.95}
    up = api.put("/api/v1/models/fraud/versions/2/stage", json={"stage": "production"})
    assert up.status_code == 200 and up.json()["stage"] == "production"
    again = api.put("/api/v1/models/fraud/versions/2/stage", json={"stage": "production"})
    assert again.status_code == 409
    assert api.put("/api/v1/models/fraud/versions/2/stage", json={}).status_code == 422
    assert api.get("/api/v1/models/nope/versions").status_code == 404
    assert api.get("/api/v1/models/fraud/versions/9").status_code == 404
