"""schemathesis against the server's own OpenAPI document: no input gives a 5xx.

Every operation gets a bounded number of generated requests (valid and invalid ones,
with the token) sent to the app in-process; any 5xx fails with the request that caused
it. Every 4xx body must have the error shape. The store holds a pipeline, an experiment
and a finished run so that some generated names hit real objects.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings

pytest_plugins = ["tests.fixtures.server"]

EXAMPLES_PER_OPERATION = int(os.environ.get("CHUTE_SCHEMATHESIS_EXAMPLES", "12"))


def test_no_server_errors_on_generated_requests(server, api):
    import schemathesis

    from tests.fixtures.server import upload_pipeline

    upload_pipeline(api)
    api.post("/api/v1/experiments", json={"name": "x1"})
    schema = schemathesis.openapi.from_dict(server.app.openapi())
    schema.app = server.app
    headers = server.headers
    failures: list[str] = []
    calls = {"n": 0}
    ops = [r.ok() for r in schema.get_all_operations()]
    assert len(ops) >= 30

    for op in ops:
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def check(case):
            resp = case.call(headers=headers, timeout=30)
            calls["n"] += 1
            where = f"{case.method} {case.formatted_path} query={case.query} body={case.body!r}"
            if resp.status_code >= 500:
                failures.append(f"{resp.status_code} {where}: {resp.text[:300]}")
            elif resp.status_code >= 400 and resp.status_code != 405:
                body = resp.json()
                if set(body) != {"error"} or not {"code", "message"} <= set(body["error"]):
                    failures.append(f"bad error body {where}: {resp.text[:300]}")

        check()
    print("schemathesis calls:", calls["n"], "operations:", len(ops))
    assert calls["n"] >= len(ops) * 3
    assert not failures, "\n".join(failures[:20])


@pytest.mark.parametrize("path", ["/api/v1/openapi.json"])
def test_openapi_document_lists_every_resource(api, path):
    paths = api.get(path).json()["paths"]
    for needed in ("/api/v1/pipelines", "/api/v1/pipelines/{pipeline_id}/versions",
                   "/api/v1/workflow-templates", "/api/v1/runs", "/api/v1/runs/{name}",
                   "/api/v1/runs/{name}/nodes", "/api/v1/runs/{name}/logs",
                   "/api/v1/runs/{name}/events", "/api/v1/runs/{name}/metrics",
                   "/api/v1/runs/{name}/artifacts/{node_id}/{artifact}/download",
                   "/api/v1/runs/{name}/artifacts/{node_id}/{artifact}/preview",
                   "/api/v1/experiments", "/api/v1/experiments/{experiment_id}/archive",
                   "/metrics", "/healthz"):
        assert needed in paths, needed
