"""Runs through the API with the embedded controller: submit, list, get, logs, SSE,
metrics, delete, and the 4xx answers (404, 409, 422, invalid specs)."""

from __future__ import annotations

import time

pytest_plugins = ["tests.fixtures.server"]

from tests.fixtures.server import PIPELINE_YAML, upload_pipeline, wait_for_phase


def _run(client, pipeline_id, **body):
    resp = client.post("/api/v1/runs", json={"pipelineId": pipeline_id, **body})
    assert resp.status_code == 201, resp.text
    return resp.json()["metadata"]["name"]


def test_pipeline_run_with_parameters_succeeds_in_argo_shape(running_api):
    pipe = upload_pipeline(running_api)
    exp = running_api.post("/api/v1/experiments", json={"name": "tuning"}).json()
    name = _run(running_api, pipe["id"], parameters={"message": "bonjour-api"},
                experimentId=exp["id"])
    doc = wait_for_phase(running_api, name)
    assert doc["kind"] == "Workflow" and doc["metadata"]["name"] == name
    assert doc["status"]["phase"] == "Succeeded"
    assert doc["status"]["progress"] == "2/2"
    pods = [n for n in doc["status"]["nodes"].values() if n["type"] == "Pod"]
    assert sorted(n["displayName"] for n in pods) == ["first", "second"]
    logs = running_api.get(f"/api/v1/runs/{name}/logs").text
    assert "first: bonjour-api" in logs and "second: fast" in logs
    first = next(n for n in pods if n["displayName"] == "first")
    one = running_api.get(f"/api/v1/runs/{name}/logs", params={"node": first["id"]}).text
    assert one.strip() == "bonjour-api"
    node = running_api.get(f"/api/v1/runs/{name}/nodes/{first['id']}").json()
    assert node["phase"] == "Succeeded"
    listed = running_api.get("/api/v1/runs", params={"experiment": "tuning"}).json()
    assert [r["name"] for r in listed["items"]] == [name]
    item = listed["items"][0]
    assert item["parameters"]["message"] == "bonjour-api"
    assert item["pipelineId"] == pipe["id"] and item["experimentId"] == exp["id"]
    assert running_api.get(f"/api/v1/experiments/{exp['id']}").json()["runCount"] == 1


def test_list_filters_and_paging(running_api):
    pipe = upload_pipeline(running_api)
    names = [_run(running_api, pipe["id"], name=f"page-{i}") for i in range(3)]
    for n in names:
        wait_for_phase(running_api, n)
    page = running_api.get("/api/v1/runs", params={"limit": 2, "offset": 0}).json()
    assert page["total"] == 3 and len(page["items"]) == 2
    rest = running_api.get("/api/v1/runs", params={"limit": 2, "offset": 2}).json()
    assert len(rest["items"]) == 1
    seen = {r["name"] for r in page["items"] + rest["items"]}
    assert seen == set(names)
    assert running_api.get("/api/v1/runs", params={"phase": "Failed"}).json()["total"] == 0
    assert running_api.get("/api/v1/runs", params={"phase": "Succeeded"}).json()["total"] == 3
    assert running_api.get("/api/v1/runs", params={"q": "page-1"}).json()["total"] == 1
    assert running_api.get("/api/v1/runs", params={"pipeline": pipe["id"]}).json()["total"] == 3
    assert running_api.get("/api/v1/runs", params={"pipeline": "nope"}).json()["total"] == 0


def test_events_stream_ends_with_the_final_phase(running_api):
    pipe = upload_pipeline(running_api)
    name = _run(running_api, pipe["id"])
    with running_api.stream("GET", f"/api/v1/runs/{name}/events") as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        body = resp.read().decode()
    assert "event: nodes" in body
    assert body.rstrip().endswith('data: {"phase":"Succeeded"}')
    assert "event: end" in body


def test_logs_follow_streams_until_the_run_ends(running_api):
    pipe = upload_pipeline(running_api)
    name = _run(running_api, pipe["id"], parameters={"message": "followed"})
    t0 = time.time()
    with running_api.stream("GET", f"/api/v1/runs/{name}/logs",
                            params={"follow": "true"}) as resp:
        text = resp.read().decode()
    assert "first: followed" in text and "second: fast" in text
    assert time.time() - t0 < 60


def test_metrics_from_the_store_and_the_experiment_table(running_api):
    from chute.store.models import MetricRow

    pipe = upload_pipeline(running_api)
    name = _run(running_api, pipe["id"])
    doc = wait_for_phase(running_api, name)
    store = running_api.app.state.ctx.store
    with store.write() as s:
        s.add(MetricRow(workflow_uid=doc["metadata"]["uid"], node_id=None, name="auc",
                        value=0.91, kind="scalar"))
        s.add(MetricRow(workflow_uid=doc["metadata"]["uid"], node_id=None, name="cm",
                        value=None, kind="confusion_matrix",
                        data={"labels": ["no", "yes"], "matrix": [[5, 1], [2, 7]]}))
    m = running_api.get(f"/api/v1/runs/{name}/metrics").json()
    assert m["scalars"] == {"auc": 0.91}
    assert m["confusion"][0]["matrix"] == [[5, 1], [2, 7]]
    listed = running_api.get("/api/v1/runs", params={"include": "metrics"}).json()
    assert listed["items"][0]["metrics"] == {"auc": 0.91}


def test_delete_removes_the_run(running_api):
    pipe = upload_pipeline(running_api)
    name = _run(running_api, pipe["id"])
    wait_for_phase(running_api, name)
    assert running_api.delete(f"/api/v1/runs/{name}").status_code == 204
    assert running_api.get(f"/api/v1/runs/{name}").status_code == 404


def test_submit_a_workflow_as_yaml_and_as_json(running_api):
    resp = running_api.post("/api/v1/runs", json={"yaml": PIPELINE_YAML, "name": "from-yaml"})
    assert resp.status_code == 201, resp.text
    import yaml

    wf = yaml.safe_load(PIPELINE_YAML)
    resp = running_api.post("/api/v1/runs", json={"workflow": wf, "parameters": {"mode": "slow"}})
    assert resp.status_code == 201, resp.text
    doc = wait_for_phase(running_api, resp.json()["metadata"]["name"])
    assert doc["status"]["phase"] == "Succeeded"


def test_not_found_answers(api):
    for path in ("/api/v1/runs/nope", "/api/v1/runs/nope/nodes", "/api/v1/runs/nope/nodes/x",
                 "/api/v1/runs/nope/logs", "/api/v1/runs/nope/events",
                 "/api/v1/runs/nope/metrics", "/api/v1/runs/nope/artifacts",
                 "/api/v1/runs/nope/artifacts/n/a/download",
                 "/api/v1/runs/nope/artifacts/n/a/preview",
                 "/api/v1/pipelines/nope", "/api/v1/pipelines/nope/versions",
                 "/api/v1/pipelines/nope/versions/1", "/api/v1/experiments/nope",
                 "/api/v1/workflow-templates/nope"):
        resp = api.get(path)
        assert resp.status_code == 404, path
        err = resp.json()["error"]
        assert err["code"] == "not_found" and "nope" in err["message"], path
    assert api.delete("/api/v1/runs/nope").status_code == 404
    assert api.post("/api/v1/experiments/nope/archive").status_code == 404
    assert api.post("/api/v1/runs", json={"pipelineId": "nope"}).status_code == 404


def test_bad_input_is_422_with_the_field_named(api):
    cases = [
        ({"pipelineId": "x", "bogus": 1}, "body.bogus"),
        ({"pipelineId": "x", "name": "Not A Name"}, "body.name"),
        ({"pipelineId": "x", "parameters": {"a": {"nested": 1}}}, "body.parameters.a"),
        ({"pipelineId": "x", "pipelineVersion": 0}, "body.pipelineVersion"),
    ]
    for body, path in cases:
        resp = api.post("/api/v1/runs", json=body)
        assert resp.status_code == 422, body
        err = resp.json()["error"]
        assert err["code"] == "invalid_request" and err["path"] == path, err
    resp = api.get("/api/v1/runs", params={"limit": 0})
    assert resp.status_code == 422 and resp.json()["error"]["path"] == "query.limit"
    resp = api.post("/api/v1/experiments", json={})
    assert resp.status_code == 422 and resp.json()["error"]["path"] == "body.name"


def test_invalid_specs_are_400_naming_the_place(api):
    bad = PIPELINE_YAML.replace("template: echo", "template: missing", 1)
    resp = api.post("/api/v1/pipelines", files={"file": ("bad.yaml", bad)})
    assert resp.status_code == 400
    err = resp.json()["error"]
    assert err["code"] == "invalid_spec" and "missing" in err["message"]
    assert err["path"].startswith("spec.templates")
    resp = api.post("/api/v1/pipelines", files={"file": ("dup.yaml", "a: 1\na: 2\n")})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_spec"
    resp = api.post("/api/v1/runs", json={"yaml": "kind: Workflow\n"})
    assert resp.status_code == 400
    assert api.get("/api/v1/runs", params={"phase": "Bogus"}).status_code == 400
    assert api.post("/api/v1/runs", json={}).status_code == 400
    assert api.get("/api/v1/runs").json()["total"] == 0  # nothing half-written


def test_runs_cannot_join_an_archived_experiment(api):
    pipe = upload_pipeline(api)
    exp = api.post("/api/v1/experiments", json={"name": "old"}).json()
    assert api.post(f"/api/v1/experiments/{exp['id']}/archive").json()["archived"] is True
    resp = api.post("/api/v1/runs", json={"pipelineId": pipe["id"], "experimentId": exp["id"]})
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "conflict"
    assert api.get("/api/v1/experiments", params={"archived": "true"}).json()["total"] == 1
    assert api.get("/api/v1/experiments", params={"archived": "false"}).json()["total"] == 0


def test_big_logs_are_sent_whole(running_api):
    pipe = upload_pipeline(running_api)
    name = _run(running_api, pipe["id"])
    doc = wait_for_phase(running_api, name)
    node = next(n for n in doc["status"]["nodes"].values() if n.get("displayName") == "first")
    settings = running_api.app.state.ctx.settings
    path = settings.logs_dir / doc["metadata"]["uid"] / f"{node['id']}.log"
    lines = [f"2026-01-01T00:00:00Z stdout line {i:07d} " + "x" * 40 for i in range(60_000)]
    path.write_text("\n".join(lines) + "\n")  # about 4 MiB
    text = running_api.get(f"/api/v1/runs/{name}/logs", params={"node": node["id"]}).text
    got = text.splitlines()
    assert len(got) == 60_000
    assert got[0].startswith("line 0000000") and got[-1].startswith("line 0059999")


def test_run_from_a_stored_workflow_template(running_api):
    tmpl = PIPELINE_YAML.replace("kind: Workflow", "kind: WorkflowTemplate").replace(
        "generateName: greet-", "name: greet-template")
    assert running_api.post("/api/v1/workflow-templates",
                            json={"yaml": tmpl}).status_code == 201
    resp = running_api.post("/api/v1/runs", json={"workflowTemplate": "greet-template",
                                                  "parameters": {"message": "templated"}})
    assert resp.status_code == 201, resp.text
    name = resp.json()["metadata"]["name"]
    assert name.startswith("greet-template-")
    assert wait_for_phase(running_api, name)["status"]["phase"] == "Succeeded"
    assert "first: templated" in running_api.get(f"/api/v1/runs/{name}/logs").text


def test_metrics_from_sdk_metrics_artifacts(running_api, tmp_path):
    """KFP-style Metrics / ClassificationMetrics artifacts (what chute.dsl writes) feed the
    experiment table, the bar charts, ROC curves and confusion matrices."""
    import json

    from chute.store import queries
    from tests.fixtures.server import attach_artifact

    pipe = upload_pipeline(running_api)
    name = _run(running_api, pipe["id"])
    wait_for_phase(running_api, name)
    store = running_api.app.state.ctx.store
    with store.write() as s:
        row = queries.get_workflow(s, name)
        spec = json.loads(json.dumps(row.spec))
        for t in spec["spec"]["templates"]:
            if t["name"] == "echo":
                t["metadata"] = {"annotations": {"chute.dev/artifact-types": json.dumps(
                    {"metrics": "system.Metrics", "eval": "system.ClassificationMetrics"})}}
        row.spec = spec
    m = tmp_path / "metrics.json"
    m.write_text(json.dumps({"accuracy": 0.97, "f1": 0.8, "note": "not a number"}))
    c = tmp_path / "eval.json"
    c.write_text(json.dumps({
        "confusionMatrix": {"annotationSpecs": [{"displayName": "legit"},
                                                {"displayName": "fraud"}],
                            "rows": [{"row": [90, 2]}, {"row": [3, 5]}]},
        "confidenceMetrics": [{"confidenceThreshold": 0.9, "recall": 0.4,
                               "falsePositiveRate": 0.01},
                              {"confidenceThreshold": 0.5, "recall": 0.8,
                               "falsePositiveRate": 0.1}]}))
    attach_artifact(running_api.app, name, "first", m, "metrics")
    attach_artifact(running_api.app, name, "first", c, "eval")
    running_api.app.state.ctx.extras.pop("metrics_cache", None)
    got = running_api.get(f"/api/v1/runs/{name}/metrics").json()
    assert got["scalars"] == {"accuracy": 0.97, "f1": 0.8}
    assert got["confusion"][0]["labels"] == ["legit", "fraud"]
    assert got["confusion"][0]["matrix"] == [[90, 2], [3, 5]]
    assert got["roc"][0]["points"] == [{"x": 0.01, "y": 0.4}, {"x": 0.1, "y": 0.8}]
