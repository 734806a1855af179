"""S-5: artifact and log downloads never leave the run's store; headers sandbox them.

The run is real (submitted through the API and run by the embedded controller); its
artifacts are stored with the artifact repository under the run's uid, as the engine
does, and recorded on the node. Then every traversal shape is thrown at the routes.
"""

from __future__ import annotations

import os
from urllib.parse import quote

import pytest

pytest_plugins = ["tests.fixtures.server"]

from tests.fixtures.server import upload_pipeline, wait_for_phase

OUTSIDE_SECRET = "outside-the-store-3f9c1d"
TRAVERSALS = [
    "../x", "../../../../etc/passwd", "/etc/passwd", "..%2f..%2fetc%2fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "%252e%252e%252fetc%252fpasswd", "..\\..\\x",
    "..%5c..%5cx", "a/../../x", "x%00.csv", "C:\\Windows\\win.ini", "file:///etc/passwd",
    "//etc/passwd", "./../x",
]


@pytest.fixture
def run_with_artifacts(running_api, tmp_path):
    """A finished run whose first step has csv, html and directory artifacts."""
    from sqlalchemy import select

    from chute.artifacts import ArtifactRepository
    from chute.store.models import NodeRow

    pipe = upload_pipeline(running_api)
    resp = running_api.post("/api/v1/runs", json={"pipelineId": pipe["id"]})
    name = resp.json()["metadata"]["name"]
    doc = wait_for_phase(running_api, name)
    uid = doc["metadata"]["uid"]
    node_id = next(n["id"] for n in doc["status"]["nodes"].values()
                   if n.get("displayName") == "first")
    ctx = running_api.app.state.ctx
    repo = ArtifactRepository.from_settings(ctx.settings)
    outside = tmp_path / "outside.txt"
    outside.write_text(OUTSIDE_SECRET)
    src = tmp_path / "src"
    src.mkdir()
    (src / "table.csv").write_text("a,b\n1,2\n3,4\n")
    (src / "page.html").write_text("<script>alert(1)</script>")
    d = src / "dir"
    d.mkdir()
    (d / "ok.txt").write_text("inside")
    os.symlink(outside, d / "link.txt")
    records = [
        repo.save(src / "table.csv", name="table", workflow_uid=uid, node_id=node_id,
                  archive={"none": {}}),
        repo.save(src / "page.html", name="page", workflow_uid=uid, node_id=node_id,
                  archive={"none": {}}),
    ]
    entries = [dict(r.to_dict()) for r in records]
    # A directory stored as is, with a symlink planted next to it in the store afterwards
    # (as a hostile step or a tampered store could): the server must not follow it out.
    dir_key = f"{uid}/{node_id}/dir"
    repo.put_file(d / "ok.txt", f"{dir_key}/ok.txt")
    store_root = ctx.settings.artifacts_dir
    os.symlink(outside, store_root / dir_key / "link.txt")
    entries.append({"name": "dir", "key": dir_key, "archive": "none", "is_dir": True})
    # A record whose key points outside the run's prefix (a tampered database row), at
    # an object that really exists in the store under another run.
    repo.put_file(outside, "other-run/secret.txt")
    entries.append({"name": "forged", "key": "other-run/secret.txt", "archive": "none"})
    entries.append({"name": "forged2", "key": "../../outside.txt", "archive": "none"})
    with ctx.store.write() as s:
        node = s.scalar(select(NodeRow).where(NodeRow.workflow_uid == uid,
                                              NodeRow.node_id == node_id))
        node.outputs = {**(node.outputs or {}), "artifacts": entries}
    return running_api, name, node_id


def _base(name, node_id, art):
    return f"/api/v1/runs/{name}/artifacts/{quote(node_id)}/{art}"


def test_download_and_preview_with_sandbox_headers(run_with_artifacts):
    client, name, node = run_with_artifacts
    resp = client.get(_base(name, node, "table") + "/download")
    assert resp.status_code == 200 and resp.content == b"a,b\n1,2\n3,4\n"
    assert resp.headers["content-security-policy"].startswith("sandbox")
    assert resp.headers["x-content-type-options"] == "nosniff"
    prev = client.get(_base(name, node, "table") + "/preview").json()
    assert prev["kind"] == "csv" and prev["columns"] == ["a", "b"]
    assert prev["rows"] == [["1", "2"], ["3", "4"]]
    html = client.get(_base(name, node, "page") + "/download")
    assert html.status_code == 200
    assert html.headers["content-disposition"].startswith("attachment")
    assert html.headers["content-type"] == "application/octet-stream"
    assert html.headers["content-security-policy"].startswith("sandbox")
    ok = client.get(_base(name, node, "dir") + "/download", params={"file": "ok.txt"})
    assert ok.status_code == 200 and ok.content == b"inside"
    listed = client.get(f"/api/v1/runs/{name}/artifacts").json()["items"]
    assert {"table", "page", "dir"} <= {a["name"] for a in listed}


def test_traversal_in_every_position_is_refused(run_with_artifacts):
    client, name, node = run_with_artifacts
    tried = 0
    for bad in TRAVERSALS:
        urls = [
            (_base(name, node, "dir") + "/download", {"file": bad}),
            (f"/api/v1/runs/{name}/artifacts/{quote(node)}/{quote(bad, safe='')}/download", {}),
            (f"/api/v1/runs/{name}/artifacts/{quote(bad, safe='')}/table/download", {}),
            (f"/api/v1/runs/{name}/artifacts/{quote(node)}/{quote(bad, safe='')}/preview", {}),
            (f"/api/v1/runs/{name}/logs", {"node": bad}),
        ]
        for url, params in urls:
            resp = client.get(url, params=params)
            assert resp.status_code in (400, 404), (url, params, resp.status_code)
            assert OUTSIDE_SECRET.encode() not in resp.content
            assert b"root:" not in resp.content
            tried += 1
    assert tried == 5 * len(TRAVERSALS)


def test_symlink_and_forged_keys_return_nothing_from_outside(run_with_artifacts):
    client, name, node = run_with_artifacts
    for url, params in [
        (_base(name, node, "dir") + "/download", {"file": "link.txt"}),
        (_base(name, node, "forged") + "/download", {}),
        (_base(name, node, "forged2") + "/download", {}),
        (_base(name, node, "forged") + "/preview", {}),
        (_base(name, node, "forged2") + "/preview", {}),
    ]:
        resp = client.get(url, params=params)
        assert resp.status_code in (400, 404), (url, params, resp.status_code)
        assert OUTSIDE_SECRET.encode() not in resp.content


def test_raw_nul_and_encoded_slashes_in_the_url_path(run_with_artifacts):
    client, name, node = run_with_artifacts
    for raw in ("%00", "..%2F", "%2e%2e", "..%252f"):
        resp = client.get(f"/api/v1/runs/{name}/artifacts/{quote(node)}/{raw}/download")
        assert resp.status_code in (400, 404)
        assert OUTSIDE_SECRET.encode() not in resp.content
