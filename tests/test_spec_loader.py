"""The defensive loader: YAML and JSON, one or many documents, every problem with its place,
and hostile input (huge, deep, aliased, duplicated, binary) refused quickly."""

from __future__ import annotations

import json
import time

import pytest

from chute.errors import SpecError
from chute.spec.loader import (
    MAX_DEPTH,
    MAX_SPEC_BYTES,
    dump_yaml,
    load_documents,
    load_file,
    parse_documents,
    to_dict,
)
from chute.spec.models import CronWorkflow, Workflow, WorkflowTemplate, as_int

WF = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: hello-}
spec:
  entrypoint: main
  templates:
  - name: main
    container: {image: busybox, command: [echo, hi]}
"""


def issues(data, source=None) -> list[str]:
    with pytest.raises(SpecError) as err:
        load_documents(data, source)
    return [str(i) for i in err.value.issues]


def test_yaml_and_json_give_the_same_model():
    (from_yaml,) = load_documents(WF)
    (from_json,) = load_documents(json.dumps(to_dict(from_yaml)))
    assert isinstance(from_yaml, Workflow)
    assert from_yaml == from_json
    assert from_yaml.spec.templates[0].kind == "container"
    assert from_yaml.name == "hello-"


def test_many_documents_and_kubernetes_lists():
    docs = load_documents(WF + "---\n" + WF.replace("kind: Workflow", "kind: WorkflowTemplate")
                          .replace("generateName: hello-", "name: lib"))
    assert [type(d) for d in docs] == [Workflow, WorkflowTemplate]
    listed = {"apiVersion": "v1", "kind": "List", "items": [to_dict(docs[0]), to_dict(docs[1])]}
    assert load_documents(json.dumps(listed)) == docs
    assert load_documents(json.dumps([to_dict(d) for d in docs])) == docs
    # empty documents between separators are skipped
    assert load_documents("---\n" + WF + "---\n---\n") == docs[:1]


def test_bytes_with_bom_and_crlf_load():
    data = ("\ufeff" + WF).replace("\n", "\r\n").encode()
    assert load_documents(data) == load_documents(WF)


def test_unknown_field_named_with_path_and_suggestion():
    text = WF.replace("entrypoint: main", "entrypoint: main\n  entrypiont: x").replace(
        "command: [echo, hi]", "comand: [echo]")
    assert sorted(issues(text)) == [
        "spec.entrypiont: unknown field 'entrypiont' (did you mean 'entrypoint'?)",
        "spec.templates[0].container.comand: unknown field 'comand' (did you mean 'command'?)",
    ]


def test_wrong_types_and_missing_fields():
    text = WF.replace("command: [echo, hi]", "command: echo") + \
        "  - name: d\n    dag: {tasks: [{template: main}]}\n"
    found = issues(text)
    assert any(f.startswith("spec.templates[0].container.command: ") for f in found)
    assert "spec.templates[1].dag.tasks[0].name: required field is missing" in found
    assert issues(WF.replace("spec:\n", "spec: 5\nx:\n", 1))[0].startswith("spec: ")


def test_not_workflow_resources():
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n"
    assert issues(cm) == ["kind: not an Argo workflow resource (kind: 'ConfigMap'); chute "
                          "loads Workflow, WorkflowTemplate, ClusterWorkflowTemplate, "
                          "CronWorkflow"]
    assert issues("- 1\n- 2\n") == ["not an Argo workflow resource: expected a mapping, "
                                     "got list"]
    assert issues("just text\n") == ["not an Argo workflow resource: expected a mapping, "
                                     "got str"]
    assert issues(WF.replace("argoproj.io/v1alpha1", "argoproj.io/v2"))[0].startswith(
        "apiVersion: expected 'argoproj.io/v1alpha1'")


def test_every_document_reported_at_once():
    bad = WF.replace("entrypoint", "entrypont")
    found = issues(bad + "---\n" + bad + "---\nkind: Pod\n")
    assert [f.split(":")[0] for f in found] == ["document 1", "document 2", "document 3"]
    assert found[0].startswith("document 1: spec.entrypont: unknown field")


def test_source_prefixes_the_message():
    with pytest.raises(SpecError) as err:
        load_documents("", "f.yaml")
    assert str(err.value) == "f.yaml: empty spec: no document found"


@pytest.mark.parametrize(("data", "expected"), [
    ("", "empty spec: no document found"),
    ("   \n# only a comment\n", "empty spec: no document found"),
    (b"\xff\xfe\x00garbage", "not UTF-8 text"),
    (WF.replace("main", "ma\x00in", 1), "NUL byte in spec text"),
    ("a: [1, 2\n", "invalid YAML"),
    ("{\"a\": 1, \"a\": 2}", "duplicate key 'a'"),
    ("a: 1\na: 2\n", "duplicate key 'a'"),
    ("a: !!python/object:os.system {}\n", "invalid YAML"),
])
def test_hostile_or_broken_text(data, expected):
    found = issues(data)
    assert any(expected in f for f in found), found


def test_size_limit_is_checked_before_parsing(tmp_path):
    big = "# " + "x" * MAX_SPEC_BYTES + "\n"
    start = time.process_time()
    assert "the limit is" in issues(big)[0]
    path = tmp_path / "big.yaml"
    path.write_text(big)
    with pytest.raises(SpecError, match="limit is"):
        load_file(path)
    assert time.process_time() - start < 2


def test_deep_nesting_and_alias_bombs_are_refused_fast():
    deep = "a: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "\n"
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8))
    for data, expected in ((deep, "nesting deeper than"), (bomb, "more than")):
        start = time.process_time()
        assert any(expected in f for f in issues(data))
        assert time.process_time() - start < 2


def test_load_file_errors(tmp_path):
    with pytest.raises(SpecError, match="no such file"):
        load_file(tmp_path / "nope.yaml")
    with pytest.raises(SpecError, match="is a directory"):
        load_file(tmp_path)
    path = tmp_path / "wf.yaml"
    path.write_text(WF)
    assert load_file(path) == load_documents(WF)


def test_scalars_stay_text_and_int_or_string_is_normalised():
    text = WF.replace("container:", "activeDeadlineSeconds: 30\n    retryStrategy: {limit: 2}"
                      "\n    container:") + "  arguments:\n    parameters:\n" \
        "    - {name: when, value: 2024-01-01}\n    - {name: flag, value: true}\n" \
        "    - {name: n, value: 5}\n"
    (wf,) = load_documents(text)
    t = wf.spec.templates[0]
    assert t.activeDeadlineSeconds == "30" and as_int(t.activeDeadlineSeconds) == 30
    assert t.retryStrategy.limit == "2"
    values = [p.value for p in wf.spec.arguments.parameters]
    assert values == ["2024-01-01", "true", "5"]


def test_cron_workflow_and_dump_is_clean_yaml():
    text = """\
apiVersion: argoproj.io/v1alpha1
kind: CronWorkflow
metadata: {name: c}
spec:
  schedules: ["0 * * * *"]
  workflowSpec:
    entrypoint: m
    templates: [{name: m, container: {image: busybox}}]
"""
    (cw,) = load_documents(text)
    assert isinstance(cw, CronWorkflow)
    out = dump_yaml(cw)
    assert "null" not in out
    assert parse_documents(out) == [to_dict(cw)]
