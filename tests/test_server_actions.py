"""Run actions through the API, performed by the engine's controller embedded in the app:
suspend/resume, stop, terminate, retry, resubmit, and their 404/409 answers."""

from __future__ import annotations

import time

pytest_plugins = ["tests.fixtures.server"]

from tests.fixtures.server import wait_for_phase  # noqa: E402

TWO_STEPS = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: two-}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: one, template: nap}
    - - {name: two, template: nap}
  - name: nap
    container: {image: alpine, command: [sh, -c, "sleep 1; echo napped"]}
"""

LONG = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: long-}
spec:
  entrypoint: main
  templates:
  - name: main
    container: {image: alpine, command: [sh, -c, "sleep 60"]}
"""

FLAKY = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: flaky-}
spec:
  entrypoint: main
  onExit: report
  arguments:
    parameters: [{name: marker}]
  templates:
  - name: main
    steps:
    - - {name: ok, template: ok}
    - - {name: flaky, template: flaky}
  - name: ok
    container: {image: alpine, command: [sh, -c, "echo fine"]}
  - name: flaky
    container:
      image: alpine
      command: [sh, -c, "test -f {{workflow.parameters.marker}} || { touch {{workflow.parameters.marker}}; exit 1; }"]
  - name: report
    container: {image: alpine, command: [sh, -c, "echo {{workflow.status}} > /tmp/s"]}
    outputs: {parameters: [{name: seen, valueFrom: {path: /tmp/s}}]}
"""


def _seen(doc):
    """What the run's exit handler saw as ``{{workflow.status}}``."""
    node = next(n for n in doc["status"]["nodes"].values() if n["name"].endswith(".onExit"))
    return next(p["value"] for p in node["outputs"]["parameters"] if p["name"] == "seen")


def _submit(api, text, **body):
    resp = api.post("/api/v1/runs", json={"yaml": text, **body})
    assert resp.status_code == 201, resp.text
    return resp.json()["metadata"]["name"]


def _pods(doc):
    return [n for n in doc["status"]["nodes"].values() if n["type"] == "Pod"]


def test_actions_listed_are_those_of_the_engine(api):
    assert api.get("/api/v1/run-actions").json()["actions"] == [
        "suspend", "resume", "stop", "terminate", "retry", "resubmit"]


def test_suspend_holds_new_steps_until_resume(running_api):
    name = _submit(running_api, TWO_STEPS)
    resp = running_api.put(f"/api/v1/runs/{name}/suspend")
    assert resp.status_code == 200, resp.text
    time.sleep(3)
    doc = running_api.get(f"/api/v1/runs/{name}").json()
    assert doc["status"]["phase"] in ("Pending", "Running")
    assert not any(p["displayName"] == "two" for p in _pods(doc)
                   if p["phase"] in ("Running", "Succeeded"))
    assert running_api.put(f"/api/v1/runs/{name}/resume").status_code == 200
    assert wait_for_phase(running_api, name)["status"]["phase"] == "Succeeded"
    again = running_api.put(f"/api/v1/runs/{name}/resume")
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"


def test_stop_and_terminate_end_running_runs(running_api):
    for verb in ("stop", "terminate"):
        name = _submit(running_api, LONG)
        deadline = time.time() + 30
        while not _pods(running_api.get(f"/api/v1/runs/{name}").json()):
            assert time.time() < deadline
            time.sleep(0.2)
        t0 = time.time()
        assert running_api.put(f"/api/v1/runs/{name}/{verb}").status_code == 200
        doc = wait_for_phase(running_api, name, timeout=40)
        assert doc["status"]["phase"] in ("Failed", "Error"), (verb, doc["status"])
        assert time.time() - t0 < 40


def test_retry_reruns_the_failed_step_and_resubmit_keeps_the_experiment(running_api,
                                                                         tmp_path):
    exp = running_api.post("/api/v1/experiments", json={"name": "reruns"}).json()
    marker = str(tmp_path / "marker")
    name = _submit(running_api, FLAKY, parameters={"marker": marker},
                   experimentId=exp["id"])
    doc = wait_for_phase(running_api, name)
    assert doc["status"]["phase"] == "Failed" and _seen(doc) == "Failed"
    resp = running_api.put(f"/api/v1/runs/{name}/retry")
    assert resp.status_code == 200, resp.text
    doc = wait_for_phase(running_api, name)
    assert doc["status"]["phase"] == "Succeeded"
    assert _seen(doc) == "Succeeded"  # the exit handler ran again, after the retried step
    resp = running_api.put(f"/api/v1/runs/{name}/resubmit")
    assert resp.status_code == 200, resp.text
    new = resp.json()["metadata"]["name"]
    assert new != name and new.startswith(name)
    assert wait_for_phase(running_api, new)["status"]["phase"] == "Succeeded"
    runs = running_api.get("/api/v1/runs", params={"experiment": "reruns"}).json()
    assert {r["name"] for r in runs["items"]} == {name, new}


def test_actions_on_unknown_runs_are_404(api):
    for verb in ("suspend", "resume", "stop", "terminate", "retry", "resubmit"):
        resp = api.put(f"/api/v1/runs/nope/{verb}")
        assert resp.status_code == 404, verb
