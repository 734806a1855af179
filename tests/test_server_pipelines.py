"""Pipelines, versions, experiments and workflow templates through the API."""

from __future__ import annotations

from pathlib import Path

pytest_plugins = ["tests.fixtures.server"]

from tests.fixtures.server import PIPELINE_YAML, upload_pipeline

REPO = Path(__file__).resolve().parents[1]


def test_upload_yaml_gives_parameters_and_static_dag(api):
    pipe = upload_pipeline(api)
    assert pipe["name"] == "greet" and pipe["latestVersion"] == 1
    v = api.get(f"/api/v1/pipelines/{pipe['id']}/versions/latest").json()
    params = {p["name"]: p for p in v["parameters"]}
    assert params["message"] == {"name": "message", "default": "hello", "type": "string",
                                 "enum": None, "description": None}
    assert params["count"]["type"] == "integer"
    assert params["mode"]["enum"] == ["fast", "slow"]
    assert [n["id"] for n in v["graph"]["nodes"]] == ["first", "second"]
    assert v["graph"]["edges"] == [["first", "second"]]
    assert v["sourceKind"] == "yaml" and "kind: Workflow" in v["source"]
    by_name = api.get("/api/v1/pipelines/greet").json()
    assert by_name["id"] == pipe["id"]


def test_versions_and_conflicts(api):
    pipe = upload_pipeline(api)
    again = api.post("/api/v1/pipelines", files={"file": ("greet.yaml", PIPELINE_YAML)})
    assert again.status_code == 409
    v2 = api.post(f"/api/v1/pipelines/{pipe['id']}/versions",
                  files={"file": ("g.yaml", PIPELINE_YAML.replace("hello", "hi"))})
    assert v2.status_code == 201 and v2.json()["version"] == 2
    assert api.get(f"/api/v1/pipelines/{pipe['id']}/versions").json()["total"] == 2
    v1 = api.get(f"/api/v1/pipelines/{pipe['id']}/versions/1").json()
    assert v1["parameters"][0]["default"] == "hello"
    latest = api.get(f"/api/v1/pipelines/{pipe['id']}/versions/latest").json()
    assert latest["parameters"][0]["default"] == "hi"
    assert api.get(f"/api/v1/pipelines/{pipe['id']}/versions/7").status_code == 404
    assert api.get(f"/api/v1/pipelines/{pipe['id']}/versions/x").status_code == 400
    listed = api.get("/api/v1/pipelines", params={"q": "gre"}).json()
    assert listed["total"] == 1 and listed["items"][0]["latestVersion"] == 2
    assert api.delete(f"/api/v1/pipelines/{pipe['id']}").status_code == 204
    assert api.get(f"/api/v1/pipelines/{pipe['id']}").status_code == 404


def test_upload_python_pipeline_is_compiled_out_of_process(api):
    src = (REPO / "examples" / "hello_world.py").read_text()
    resp = api.post("/api/v1/pipelines", files={"file": ("hello_world.py", src)})
    assert resp.status_code == 201, resp.text
    pipe = resp.json()
    assert pipe["name"] == "hello-world"
    v = api.get(f"/api/v1/pipelines/{pipe['id']}/versions/1").json()
    assert v["sourceKind"] == "python" and v["source"] == src
    assert [p["name"] for p in v["parameters"]] == ["name"]
    assert v["spec"]["kind"] in ("Workflow", "WorkflowTemplate")


def test_bad_uploads_are_refused_with_a_reason(api):
    cases = [
        ("empty.yaml", b"", "empty"),
        ("bin.yaml", b"\xff\xfe\x00", "UTF-8"),
        ("broken.py", b"import nonexistent_module_xyz\n", "does not compile"),
    ]
    for filename, data, words in cases:
        resp = api.post("/api/v1/pipelines", files={"file": (filename, data)})
        assert resp.status_code == 400, (filename, resp.text)
        assert words in resp.json()["error"]["message"], resp.json()
    assert api.post("/api/v1/pipelines").status_code == 422
    assert api.get("/api/v1/pipelines").json()["total"] == 0


def test_experiments_create_list_archive(api):
    a = api.post("/api/v1/experiments", json={"name": "exp-a", "description": "first"})
    assert a.status_code == 201 and a.json()["archived"] is False
    assert api.post("/api/v1/experiments", json={"name": "exp-a"}).status_code == 409
    api.post("/api/v1/experiments", json={"name": "exp-b"})
    assert api.get("/api/v1/experiments").json()["total"] == 2
    arch = api.post(f"/api/v1/experiments/{a.json()['id']}/archive").json()
    assert arch["archived"] is True
    names = [e["name"] for e in api.get("/api/v1/experiments",
                                        params={"archived": "false"}).json()["items"]]
    assert names == ["exp-b"]
    back = api.post("/api/v1/experiments/exp-a/unarchive").json()
    assert back["archived"] is False


def test_workflow_templates(api):
    tmpl = PIPELINE_YAML.replace("kind: Workflow", "kind: WorkflowTemplate").replace(
        "generateName: greet-", "name: greet-template")
    resp = api.post("/api/v1/workflow-templates", json={"yaml": tmpl})
    assert resp.status_code == 201, resp.text
    assert api.get("/api/v1/workflow-templates").json()["items"][0]["name"] == "greet-template"
    got = api.get("/api/v1/workflow-templates/greet-template").json()
    assert got["kind"] == "WorkflowTemplate"
    assert api.post("/api/v1/workflow-templates", json={}).status_code == 400
    wf = api.post("/api/v1/workflow-templates", json={"yaml": PIPELINE_YAML})
    assert wf.status_code == 400 and "WorkflowTemplate" in wf.json()["error"]["message"]
    assert api.delete("/api/v1/workflow-templates/greet-template").status_code == 204
    assert api.get("/api/v1/workflow-templates/greet-template").status_code == 404


def test_metrics_endpoint_is_prometheus_text(api):
    resp = api.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    for name in ("chute_workflows", "chute_step_duration_seconds_bucket", "chute_queue_depth"):
        assert name in resp.text


def test_oversized_bodies_are_refused_before_reading(api, anon):
    big = b"a" * (9 * 1024 * 1024)
    resp = api.post("/api/v1/pipelines", files={"file": ("big.yaml", big)})
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "too_large"
    resp = api.post("/api/v1/runs", content=big, headers={"Content-Type": "application/json"})
    assert resp.status_code == 413
    assert anon.post("/api/v1/runs", content=big).status_code == 401  # auth comes first
    assert api.get("/api/v1/pipelines").json()["total"] == 0
