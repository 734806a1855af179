"""Semantic validation: each of Argo's checks, reported at its dotted place, all at once
(structure, references, dependencies; the cost of validating a large DAG)."""

from __future__ import annotations

import textwrap
import time

import pytest

from chute.errors import SpecError, UnsupportedError
from chute.spec.validate import check, validate
from tests.fixtures.spec_text import ECHO, HELLO, load, problems, wf


def test_valid_workflow_has_no_issue():
    assert problems(HELLO) == []


def test_entrypoint_missing_and_unknown():
    assert problems(wf(ECHO, entry="''")) == ["spec.entrypoint: entrypoint is required"]
    assert problems(wf(ECHO, entry="ecko")) == [
        "spec.entrypoint: unknown template 'ecko' (did you mean 'echo'?)"]


def test_the_issue_example_unknown_dependency_with_suggestion():
    text = wf(ECHO + """
- name: other
  container: {image: busybox}
- name: main
  dag:
    tasks:
    - {name: train, template: echo}
    - {name: evaluate, template: echo, dependencies: [trian]}
""")
    assert problems(text) == [
        "spec.templates[2].dag.tasks[1].dependencies[0]: unknown task 'trian' "
        "(did you mean 'train'?)"]


@pytest.mark.parametrize(("tasks", "cycle", "where"), [
    ("- {name: a, template: echo, dependencies: [a]}", "a -> a", 0),
    ("- {name: a, template: echo, dependencies: [b]}\n"
     "- {name: b, template: echo, dependencies: [a]}", "a -> b -> a", 0),
    ("- {name: x, template: echo}\n"
     "- {name: a, template: echo, depends: b && x}\n"
     "- {name: b, template: echo, depends: c}\n"
     "- {name: c, template: echo, depends: a.Succeeded}", "a -> b -> c -> a", 1),
])
def test_dependency_cycles_are_named(tasks, cycle, where):
    text = wf(ECHO + "- name: main\n  dag:\n    tasks:\n"
              + textwrap.indent(tasks, "    "))
    found = problems(text)
    assert len(found) == 1, found
    assert found[0].startswith(f"spec.templates[1].dag.tasks[{where}]: ")
    assert cycle in found[0]


def test_depends_that_does_not_parse_or_names_unknown_tasks():
    text = wf(ECHO + """
- name: main
  dag:
    tasks:
    - {name: a, template: echo}
    - {name: b, template: echo, depends: "a &&"}
    - {name: c, template: echo, depends: "a.Succeeded || bb"}
""")
    found = problems(text)
    assert found[0].startswith("spec.templates[1].dag.tasks[1].depends: invalid depends "
                               "expression:")
    assert "offset" in found[0]
    assert found[1] == ("spec.templates[1].dag.tasks[2].depends: unknown task 'bb' in "
                        "depends (did you mean 'b'?)")


def test_items_based_depends_needs_a_looping_task():
    text = wf(ECHO + """
- name: main
  dag:
    tasks:
    - {name: each, template: echo, withItems: [1, 2]}
    - {name: one, template: echo}
    - {name: a, template: echo, depends: "each.AnySucceeded && one.Succeeded"}
    - {name: b, template: echo, depends: "one.AllFailed || each.AllFailed"}
""")
    assert problems(text) == [
        "spec.templates[1].dag.tasks[3].depends: one.AllFailed is an items-based result, but "
        "task 'one' does not loop (withItems, withParam or withSequence)"]


def test_duplicate_names_templates_steps_tasks_parameters():
    text = wf(ECHO + ECHO + """
- name: main
  inputs:
    parameters: [{name: p, value: "1"}, {name: p, value: "2"}]
  steps:
  - - {name: s, template: echo}
  - - {name: s, template: echo}
- name: d
  dag:
    tasks:
    - {name: t, template: echo}
    - {name: t, template: echo}
""")
    assert problems(text) == [
        "spec.templates[1].name: duplicate template name 'echo' (also spec.templates[0])",
        "spec.templates[2].inputs.parameters[1].name: duplicate parameter name 'p' "
        "(also spec.templates[2].inputs.parameters[0])",
        "spec.templates[2].steps[1][0].name: duplicate step name 's' "
        "(also spec.templates[2].steps[0][0])",
        "spec.templates[3].dag.tasks[1].name: duplicate task name 't' "
        "(also spec.templates[3].dag.tasks[0])",
    ]


def test_template_kinds_exactly_one():
    text = wf("""
- name: main
  inputs: {parameters: [{name: x, value: "1"}]}
- name: both
  container: {image: busybox}
  script: {image: python, source: "print(1)"}
""")
    found = problems(text)
    assert found[0].startswith("spec.templates[0]: template has no kind")
    assert found[1] == ("spec.templates[1]: template sets several kinds (container, script); "
                        "choose one")


def test_step_references_loops_hooks_and_exit_handlers():
    text = wf(ECHO + """
- name: main
  steps:
  - - name: a
      template: ecoh
      withItems: [1, 2]
      withParam: "[1, 2]"
    - name: b
      templateRef: {name: lib, template: x}
      template: echo
    - name: c
      template: echo
      onExit: nope
      hooks:
        running: {template: echo}
""")
    assert problems(text) == [
        "spec.templates[1].steps[0][0].template: unknown template 'ecoh' "
        "(did you mean 'echo'?)",
        "spec.templates[1].steps[0][0]: set only one of withItems, withParam and "
        "withSequence (got withItems, withParam)",
        "spec.templates[1].steps[0][1]: set only one of template, templateRef and inline "
        "(got template, templateRef)",
        "spec.templates[1].steps[0][2].onExit: unknown template 'nope'",
        "spec.templates[1].steps[0][2].hooks.running.expression: hook 'running' needs an "
        "expression (only the 'exit' hook runs without one)",
    ]


def test_workflow_level_on_exit_and_hooks():
    text = wf(ECHO, extra="onExit: cleanup\nhooks:\n  exit: {template: echoo}", entry="echo")
    assert problems(text) == [
        "spec.onExit: unknown template 'cleanup'",
        "spec.hooks.exit.template: unknown template 'echoo' (did you mean 'echo'?)",
    ]


def test_leaf_only_and_non_leaf_only_fields():
    text = wf(ECHO + """
- name: main
  activeDeadlineSeconds: "10"
  timeout: 30s
  steps: [[{name: a, template: echo}]]
- name: leaf
  parallelism: 2
  timeout: "30"
  retryStrategy: {retryPolicy: Sometimes, limit: "-1"}
  container: {image: busybox}
""")
    assert problems(text) == [
        "spec.templates[1].activeDeadlineSeconds: activeDeadlineSeconds is only valid on "
        "leaf templates (container, script, resource, ...)",
        "spec.templates[1].timeout: a steps template does not support timeout",
        "spec.templates[2].retryStrategy.retryPolicy: 'Sometimes' is not a retry policy; use "
        "one of Always, OnFailure, OnError, OnTransientError",
        "spec.templates[2].retryStrategy.limit: limit must be a non-negative integer or a "
        "{{...}} variable, got '-1'",
        "spec.templates[2].parallelism: parallelism is only valid on steps and dag templates",
        "spec.templates[2].timeout: timeout '30' needs a unit (e.g. '30s')",
    ]


def test_all_issues_at_once_and_check_raises_spec_error():
    text = wf(ECHO + """
- name: main
  dag:
    tasks:
    - {name: a, template: ecko}
    - {name: b, template: echo, dependencies: [c]}
""", entry="mian")
    res = load(text)
    with pytest.raises(SpecError) as err:
        check(res, source="f.yaml")
    assert len(err.value.issues) == 3
    assert err.value.issues == validate(res)
    text = str(err.value)
    assert "f.yaml: spec.entrypoint: unknown template 'mian'" in text
    assert "spec.templates[1].dag.tasks[0].template: unknown template 'ecko'" in text
    assert "spec.templates[1].dag.tasks[1].dependencies[0]: unknown task 'c'" in text


def test_unknown_runtime_is_a_user_error():
    with pytest.raises(UnsupportedError, match="unknown runtime 'k8s'"):
        validate(load(HELLO), runtime="k8s")


def test_large_dag_validates_quickly():
    n = 5000
    tasks = "\n".join(
        f"    - {{name: t{i}, template: echo{', dependencies: [t' + str(i - 1) + ']' if i else ''}}}"
        for i in range(n))
    text = wf(ECHO + "- name: main\n  dag:\n    tasks:\n" + tasks)
    res = load(text)
    start = time.process_time()
    assert validate(res) == []
    assert time.process_time() - start < 3.0


@pytest.mark.heavy
def test_hundred_thousand_task_dag_validates_in_linear_time():
    """V-1's 100k-node spec: validation stays linear (a DAG built in memory: the YAML of
    100k tasks is over the 4 MB spec cap)."""
    from chute.spec.models import Workflow

    n = 100_000
    tasks = [{"name": f"t{i}", "template": "echo", **({"depends": f"t{i - 1}"} if i else {})}
             for i in range(n)]
    res = Workflow.model_validate({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
        "metadata": {"generateName": "big-"},
        "spec": {"entrypoint": "main", "templates": [
            {"name": "echo", "container": {"image": "busybox", "command": ["echo"]}},
            {"name": "main", "dag": {"tasks": tasks}}]}})
    start = time.process_time()
    assert validate(res) == []
    assert time.process_time() - start < 60
