"""The workflow commands end to end: real CLI, real SQLite file, real processes."""

from __future__ import annotations

import json


from tests.fixtures.cli import run  # noqa: F401 - the `run` fixture

HELLO = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: hello-}
spec:
  entrypoint: main
  arguments: {parameters: [{name: msg, value: hello world}]}
  templates:
  - name: main
    steps:
    - - name: say
        template: say
        arguments: {parameters: [{name: m, value: "{{workflow.parameters.msg}}"}]}
  - name: say
    inputs: {parameters: [{name: m}]}
    script:
      image: python:3
      command: [python]
      source: |
        print("{{inputs.parameters.m}}")
    outputs:
      parameters:
      - {name: out, valueFrom: {path: /tmp/out.txt, default: none}}
"""

FAIL = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: failing}
spec:
  entrypoint: main
  templates:
  - name: main
    container: {image: busybox, command: [sh, -c, "echo oops; exit 3"]}
"""


def test_submit_wait_get_logs_delete(run, tmp_path):
    f = tmp_path / "hello.yaml"
    f.write_text(HELLO)
    code, out, _ = run("submit", str(f), "--wait", "-p", "msg=bonjour")
    assert code == 0
    name = out.strip().splitlines()[0]
    assert name.startswith("hello-")
    code, out, _ = run("get", name, "-o", "json")
    doc = json.loads(out)
    status = doc["status"]
    assert status["phase"] == "Succeeded" and status["startedAt"] and status["finishedAt"]
    say = [n for n in status["nodes"].values() if n["displayName"] == "say"][0]
    assert say["type"] == "Pod" and say["outputs"]["result"] == "bonjour"
    assert say["outputs"]["exitCode"] == "0"
    assert {"name": "out", "value": "none"} in say["outputs"]["parameters"]
    assert say["inputs"]["parameters"][0] == {"name": "m", "value": "bonjour"}
    assert status["nodes"][name]["type"] == "Steps" and status["nodes"][name]["children"]
    code, out, _ = run("get", name)
    assert "✔ say" in out and "Succeeded" in out
    code, out, _ = run("logs", name)
    assert out.strip() == "bonjour"
    code, out, _ = run("list", "-o", "name")
    assert name in out
    assert run("delete", name)[0] == 0
    code, _, err = run("get", name)
    assert code == 2 and "not found" in err


def test_wait_exits_non_zero_when_the_workflow_fails(run, tmp_path):
    f = tmp_path / "fail.yaml"
    f.write_text(FAIL)
    code, out, _ = run("submit", str(f), "--wait")
    assert code == 1 and out.strip() == "failing"
    doc = json.loads(run("get", "failing", "-o", "json")[1])
    assert doc["status"]["phase"] == "Failed"
    assert doc["status"]["nodes"]["failing"]["outputs"]["exitCode"] == "3"


def test_refuses_what_cannot_run_locally_and_writes_nothing(run, tmp_path):
    f = tmp_path / "res.yaml"
    f.write_text("""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: res}
spec:
  entrypoint: main
  templates:
  - name: main
    resource: {action: create, manifest: "kind: ConfigMap"}
""")
    code, _, err = run("submit", str(f))
    assert code == 2 and "not supported locally" in err
    assert run("list", "-o", "name")[1].strip() == ""


def test_memoized_step_is_not_run_again(run, tmp_path):
    from tests.conftest import ARGO_DIR

    example = ARGO_DIR / "examples" / "memoize-simple.yaml"
    first = run("submit", str(example), "--wait")
    second = run("submit", str(example), "--wait")
    assert first[0] == 0 and second[0] == 0
    docs = [json.loads(run("get", r[1].split()[0], "-o", "json")[1])["status"]
            for r in (first, second)]
    roots = [next(iter(d["nodes"].values())) for d in docs]
    for r in roots:
        assert {"name": "hello", "value": "world"} in r["outputs"]["parameters"]
    assert "memoizationStatus" not in roots[0]
    assert roots[1]["memoizationStatus"] == {"hit": True, "key": "cache-key"}


def test_bad_parameter_is_a_clear_error(run, tmp_path):
    f = tmp_path / "hello.yaml"
    f.write_text(HELLO)
    code, _, err = run("submit", str(f), "-p", "nope=1")
    assert code == 2 and "nope" in err
    assert run("list", "-o", "name")[1].strip() == ""
