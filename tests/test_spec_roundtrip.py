"""Round trip of every Argo example: load -> dump -> load gives an equal model, and the
dumped YAML validates against Argo's own JSON schema (Draft 2020-12)."""

from __future__ import annotations

import json

import pytest
import yaml
from jsonschema import Draft202012Validator

from chute.errors import SpecError
from chute.spec.loader import dump_yaml, load_documents, load_file, to_dict
from tests.conftest import ARGO_DIR, REPO

KINDS = ("Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow")
EXAMPLES = ARGO_DIR / "examples"
# Refused at load on purpose (see tests/test_cli_lint.py: NOT_WORKFLOWS, DEVIATIONS).
NOT_LOADED = {"configmaps/simple-parameters-configmap.yaml", "testvolume.yaml",
              "workflow-count-resourcequota.yaml", "k8s-patch-json-workflow.yaml",
              "workflow-event-binding/event-consumer-workfloweventbinding.yaml",
              "workflow-event-binding/github-path-filter-workfloweventbinding.yaml"}


def _example_names() -> list[str]:
    if not EXAMPLES.is_dir():
        return []
    return sorted(p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.rglob("*.yaml"))


NAMES = [n for n in _example_names() if n not in NOT_LOADED]


@pytest.fixture(scope="session")
def validators() -> dict[str, Draft202012Validator]:
    """One validator per kind, built once: the schema is 600 KB."""
    schema = json.loads((ARGO_DIR / "schema.json").read_text())
    return {k: Draft202012Validator({
        "$schema": schema["$schema"],
        "$ref": f"#/definitions/io.argoproj.workflow.v1alpha1.{k}",
        "definitions": schema["definitions"]}) for k in KINDS}


def test_every_example_is_covered():
    assert len(NAMES) == 217 - len(NOT_LOADED)
    for name in NOT_LOADED:
        with pytest.raises(SpecError):
            load_file(EXAMPLES / name)


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_and_schema(name, validators):
    first = load_file(EXAMPLES / name)
    text = dump_yaml(first)
    again = load_documents(text)
    assert again == first
    assert [to_dict(r) for r in again] == [to_dict(r) for r in first]
    assert dump_yaml(again) == text  # dumping is stable
    docs = list(yaml.safe_load_all(text))
    assert len(docs) == len(first)
    for doc in docs:
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                  for e in validators[doc["kind"]].iter_errors(doc)]
        assert errors == []


@pytest.mark.parametrize("name", ["hello-world.yaml", "dag-diamond.yaml",
                                  "cron-workflow.yaml", "cluster-workflow-template/"
                                  "clustertemplates.yaml"])
def test_json_round_trip(name):
    first = load_file(EXAMPLES / name)
    text = json.dumps([to_dict(r) for r in first]) if len(first) > 1 else json.dumps(
        to_dict(first[0]))
    assert load_documents(text) == first


def test_int_or_string_fields_dump_as_strings(validators):
    (wf,) = load_documents("""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: n-}
spec:
  entrypoint: main
  podDisruptionBudget: {minAvailable: 1}
  templates:
  - name: main
    activeDeadlineSeconds: 10
    retryStrategy: {limit: 3, backoff: {duration: 1, factor: 2}}
    container:
      image: busybox
      readinessProbe: {httpGet: {port: 80}, tcpSocket: {port: 81}}
      lifecycle: {preStop: {httpGet: {port: 82}}}
""")
    data = to_dict(wf)
    tmpl = data["spec"]["templates"][0]
    assert tmpl["activeDeadlineSeconds"] == "10"
    assert tmpl["retryStrategy"] == {"limit": "3", "backoff": {"duration": "1", "factor": "2"}}
    assert tmpl["container"]["readinessProbe"] == {"httpGet": {"port": "80"},
                                                   "tcpSocket": {"port": "81"}}
    assert tmpl["container"]["lifecycle"]["preStop"]["httpGet"]["port"] == "82"
    assert data["spec"]["podDisruptionBudget"] == {"minAvailable": "1"}
    assert list(validators["Workflow"].iter_errors(data)) == []


def test_repository_example_round_trips(validators):
    (wf,) = load_file(REPO / "examples" / "hello-world.yaml")
    text = dump_yaml(wf)
    assert load_documents(text) == [wf]
    assert "null" not in text and "!!" not in text
    assert list(validators["Workflow"].iter_errors(yaml.safe_load(text))) == []
