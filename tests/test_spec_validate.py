"""Semantic validation: each of Argo's checks, reported at its dotted place, all at once."""

from __future__ import annotations

import textwrap
import time

import pytest

from chute.errors import SpecError, UnsupportedError
from chute.spec.loader import load_documents
from chute.spec.validate import check, template_index, validate, validate_all
from chute.spec.validate_local import LOCAL_UNSUPPORTED, Unsupported, local_issues


def load(text: str):
    docs = load_documents(textwrap.dedent(text))
    assert len(docs) == 1
    return docs[0]


def problems(text: str, **kw) -> list[str]:
    return [str(i) for i in validate(load(text), **kw)]


HELLO = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: hello-}
spec:
  entrypoint: main
  arguments:
    parameters: [{name: message, value: hi}]
  templates:
  - name: main
    inputs:
      parameters: [{name: message}]
    container:
      image: busybox
      command: [echo, "{{inputs.parameters.message}} from {{workflow.name}}"]
"""


def wf(templates: str, extra: str = "", entry: str = "main") -> str:
    """A Workflow with the given templates (YAML list items, indented by 2)."""
    body = textwrap.indent(textwrap.dedent(templates).strip("\n"), "  ")
    extra = textwrap.indent(textwrap.dedent(extra).strip("\n"), "  ") if extra else ""
    return (f"apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {{name: t}}\n"
            f"spec:\n  entrypoint: {entry}\n{extra}\n  templates:\n{body}\n")


ECHO = """
- name: echo
  container: {image: busybox, command: [echo, hi]}
"""


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


def test_undeclared_variables_are_named_with_their_place():
    text = wf("""
- name: main
  steps:
  - - name: first
      template: print
      arguments:
        parameters:
        - {name: msg, value: "{{workflow.parameters.mesage}}"}
  - - name: second
      template: print
      arguments:
        parameters:
        - {name: msg, value: "{{steps.frist.outputs.result}}"}
    - name: third
      template: print
      arguments:
        parameters:
        - {name: msg, value: "{{steps.first.outputs.parameters.nope}}"}
- name: print
  inputs:
    parameters: [{name: msg}]
  container:
    image: busybox
    command: [echo, "{{inputs.parameters.mgs}}", "{{pod.name}}", "{{workflow.uid}}"]
""", extra="arguments:\n  parameters: [{name: message, value: hi}]")
    assert problems(text) == [
        "spec.templates[0].steps[0][0].arguments.parameters[0].value: unknown variable "
        "{{workflow.parameters.mesage}}: the workflow has no argument 'mesage' in "
        "spec.arguments.parameters (did you mean 'message'?)",
        "spec.templates[0].steps[1][0].arguments.parameters[0].value: unknown variable "
        "{{steps.frist.outputs.result}}: unknown step 'frist' (did you mean 'first'?)",
        "spec.templates[0].steps[1][1].arguments.parameters[0].value: unknown variable "
        "{{steps.first.outputs.parameters.nope}}: step 'first' has no "
        "'outputs.parameters.nope' (check the called template's outputs)",
        "spec.templates[1].container.command[1]: unknown variable "
        "{{inputs.parameters.mgs}}: template 'print' has no input parameter 'mgs' "
        "(did you mean 'msg'?)",
    ]


def test_step_cannot_read_a_later_step_and_task_reads_unknown_task():
    text = wf("""
- name: main
  steps:
  - - {name: a, template: gen, arguments: {parameters: [{name: v, value: "{{steps.b.outputs.result}}"}]}}
  - - {name: b, template: gen, arguments: {parameters: [{name: v, value: x}]}}
- name: d
  dag:
    tasks:
    - {name: a, template: gen, arguments: {parameters: [{name: v, value: "{{tasks.zz.outputs.result}}"}]}}
- name: gen
  inputs: {parameters: [{name: v}]}
  script: {image: python, source: "print('{{inputs.parameters.v}}')"}
""")
    assert problems(text) == [
        "spec.templates[0].steps[0][0].arguments.parameters[0].value: unknown variable "
        "{{steps.b.outputs.result}}: step 'b' has not run yet here (only earlier steps can "
        "be referenced)",
        "spec.templates[1].dag.tasks[0].arguments.parameters[0].value: unknown variable "
        "{{tasks.zz.outputs.result}}: unknown task 'zz'",
    ]


def test_task_argument_needs_its_source_among_dependencies():
    text = wf("""
- name: main
  dag:
    tasks:
    - {name: gen, template: gen}
    - name: use
      template: use
      arguments: {parameters: [{name: v, value: "{{tasks.gen.outputs.result}}"}]}
- name: gen
  script: {image: python, source: "print(1)"}
- name: use
  inputs: {parameters: [{name: v}]}
  container: {image: busybox, command: [echo, "{{inputs.parameters.v}}"]}
""")
    assert problems(text) == [
        "spec.templates[0].dag.tasks[1].arguments.parameters[0]: 'v' takes a value from "
        "task 'gen', which task 'use' does not depend on (add it to dependencies/depends)"]


def test_known_globals_items_and_runtime_variables_pass():
    text = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: g-
  labels: {team: ml}
  annotations: {example.io/owner: me}
spec:
  entrypoint: main
  priority: 3
  onExit: bye
  arguments: {parameters: [{name: p, value: x}]}
  templates:
  - name: main
    steps:
    - - name: loop
        template: show
        withItems: [{k: a, v: "1"}]
        arguments:
          parameters:
          - {name: t, value: "{{item.k}}={{item.v}} {{item}} {{workflow.labels.team}}"}
      - name: seq
        template: show
        withSequence: {count: "3"}
        arguments: {parameters: [{name: t, value: "{{item}} {{workflow.parameters.p}}"}]}
    - - name: after
        template: show
        arguments:
          parameters:
          - name: t
            value: "{{steps.loop.outputs.parameters}} {{steps.seq.status}} {{=sprig.upper('x')}}"
  - name: show
    retryStrategy: {limit: "2"}
    inputs: {parameters: [{name: t}]}
    outputs:
      parameters: [{name: o, globalName: out, valueFrom: {path: /tmp/o}}]
    container:
      image: busybox
      command:
      - echo
      - "{{inputs.parameters.t}} {{workflow.creationTimestamp.RFC3339}} {{workflow.scheduledTime}}"
      - "{{workflow.annotations.example.io/owner}} {{workflow.priority}} {{retries}} {{lastRetry.exitCode}}"
      - "{{outputs.parameters.o.path}} {{node.name}} {{pod.name}} {{workflow.mainEntrypoint}}"
  - name: bye
    container:
      image: busybox
      command: [echo, "{{workflow.status}} {{workflow.failures}} {{workflow.duration}} {{workflow.outputs.parameters.out}}"]
"""
    assert problems(text) == []


def test_item_outside_a_loop_is_reported():
    text = wf("""
- name: main
  steps:
  - - {name: a, template: show, arguments: {parameters: [{name: t, value: "{{item}}"}]}}
- name: show
  inputs: {parameters: [{name: t}]}
  container: {image: busybox, command: [echo, "{{inputs.parameters.t}}"]}
""")
    found = problems(text)
    assert len(found) == 1
    assert found[0].startswith("spec.templates[0].steps[0][0].arguments.parameters[0].value: "
                               "unknown variable {{item}}")


def test_malformed_tags_and_bad_when():
    text = wf("""
- name: main
  steps:
  - - {name: a, template: echo, when: "{{steps.x.outputs.result}} =="}
    - {name: b, template: echo, when: "((1 == 1)"}
- name: echo
  container:
    image: busybox
    command: [echo, "{{inputs.parameters.x", "{{=1 +}}", "{{}}"]
""")
    found = problems(text)
    assert found[0].startswith("spec.templates[0].steps[0][0].when: invalid when condition "
                               "'{{steps.x.outputs.result}} =='")
    assert found[1].startswith("spec.templates[0].steps[0][1].when: invalid when condition")
    joined = "\n".join(found)
    assert "spec.templates[1].container.command[1]: unclosed template tag" in joined
    assert "spec.templates[1].container.command[2]: invalid expression" in joined
    assert "spec.templates[1].container.command[3]: empty template tag" in joined


def test_expressions_are_parsed_with_tags_as_opaque_names():
    text = wf("""
- name: main
  steps:
  - - name: a
      template: echo
      hooks:
        running: {template: echo, expression: "steps['a'].status == 'Running'"}
        done: {template: echo, expression: "steps.a.status ==="}
- name: echo
  retryStrategy: {expression: "{{inputs.parameters.x}} == true || lastRetry.exitCode > 1"}
  inputs: {parameters: [{name: x, value: "1"}]}
  outputs:
    parameters: [{name: o, valueFrom: {expression: "1 +", path: /o}}]
  container: {image: busybox}
""")
    found = sorted(problems(text))
    assert len(found) == 3, found
    assert found[0].startswith("spec.templates[0].steps[0][0].hooks.done.expression: "
                               "invalid expression 'steps.a.status ==='")
    assert found[1].startswith("spec.templates[1].outputs.parameters[0].valueFrom."
                               "expression: invalid expression '1 +'")
    assert found[2].startswith("spec.templates[1].outputs.parameters[0].valueFrom: "
                               "valueFrom sets several sources")


def test_enum_and_missing_argument_and_output_parameter_rules():
    text = wf("""
- name: main
  steps:
  - - {name: a, template: pick}
- name: pick
  inputs:
    parameters:
    - {name: mode, enum: [fast, slow]}
    - {name: level, default: high, enum: [low, mid]}
    - {name: e, enum: []}
  outputs:
    parameters:
    - {name: r}
    - {name: s, valueFrom: {parameter: x}}
  container: {image: busybox}
""")
    assert problems(text) == [
        "spec.templates[0].steps[0][0].arguments: missing argument 'mode': the template "
        "'pick' declares it without a default",
        "spec.templates[0].steps[0][0].arguments: missing argument 'e': the template "
        "'pick' declares it without a default",
        "spec.templates[1].inputs.parameters[1].default: 'high' is not one of the enum "
        "values ['low', 'mid']",
        "spec.templates[1].inputs.parameters[2].enum: enum must list at least one value",
        "spec.templates[1].outputs.parameters[0]: output parameter 'r' needs value or "
        "valueFrom",
        "spec.templates[1].outputs.parameters[1].valueFrom.path: path is required for an "
        "output parameter of a container template",
    ]


def test_entrypoint_inputs_come_from_workflow_arguments():
    text = wf("""
- name: main
  inputs: {parameters: [{name: a}, {name: b}, {name: c, default: x}]}
  container: {image: busybox, command: [echo, "{{inputs.parameters.a}}"]}
""", extra="arguments:\n  parameters: [{name: a}]")
    assert problems(text) == ["spec.arguments.parameters: missing argument 'b': the "
                              "entrypoint 'main' declares it without a default"]
    library = text.replace("kind: Workflow", "kind: WorkflowTemplate")
    assert problems(library) == []  # a WorkflowTemplate's caller supplies them


def test_template_refs_resolve_against_given_templates():
    library = load("""
    apiVersion: argoproj.io/v1alpha1
    kind: WorkflowTemplate
    metadata: {name: lib}
    spec:
      templates:
      - name: say
        inputs: {parameters: [{name: m}]}
        outputs: {parameters: [{name: o, valueFrom: {path: /o}}]}
        container: {image: busybox, command: [echo, "{{inputs.parameters.m}} {{workflow.parameters.any}}"]}
    """)
    assert validate(library) == []  # a library's workflow.parameters come from its users
    user = load(wf("""
- name: main
  steps:
  - - {name: a, templateRef: {name: lib, template: say}, arguments: {parameters: [{name: m, value: x}]}}
  - - {name: b, templateRef: {name: lib, template: sya}}
    - {name: c, templateRef: {name: other, template: t}}
  - - name: d
      templateRef: {name: lib, template: say}
      arguments: {parameters: [{name: m, value: "{{steps.a.outputs.parameters.oo}}"}]}
"""))
    lib = template_index([library])
    found = [str(i) for i in validate(user, templates=lib)]
    assert found == [
        "spec.templates[0].steps[1][0].templateRef.template: template 'sya' not found in "
        "WorkflowTemplate 'lib' (did you mean 'say'?)",
        "spec.templates[0].steps[2][0].arguments.parameters[0].value: unknown variable "
        "{{steps.a.outputs.parameters.oo}}: step 'a' has no 'outputs.parameters.oo' "
        "(check the called template's outputs)",
    ]
    strict = [str(i) for i in validate(user, templates=lib, strict=True)]
    assert "spec.templates[0].steps[1][1].templateRef.name: unknown WorkflowTemplate 'other'" \
        in strict
    # without the library, references are not errors (Argo resolves them at submit time)
    assert [str(i) for i in validate(user)] == []


def test_libraries_calling_each_other_and_their_global_outputs():
    docs = load_documents(textwrap.dedent("""
    apiVersion: argoproj.io/v1alpha1
    kind: WorkflowTemplate
    metadata: {name: a}
    spec:
      templates:
      - name: ping
        steps: [[{name: s, templateRef: {name: b, template: pong}}]]
      - name: out
        outputs: {parameters: [{name: o, globalName: shared, valueFrom: {path: /o}}]}
        container: {image: busybox}
    ---
    apiVersion: argoproj.io/v1alpha1
    kind: WorkflowTemplate
    metadata: {name: b}
    spec:
      templates:
      - name: pong
        steps: [[{name: s, templateRef: {name: a, template: ping}}]]
    ---
    apiVersion: argoproj.io/v1alpha1
    kind: Workflow
    metadata: {generateName: w-}
    spec:
      entrypoint: main
      templates:
      - name: main
        steps:
        - - {name: x, templateRef: {name: a, template: ping}}
          - {name: y, templateRef: {name: a, template: out}}
        - - {name: z, template: show, arguments: {parameters: [{name: m, value: "{{workflow.outputs.parameters.shared}}"}]}}
      - name: show
        inputs: {parameters: [{name: m}]}
        container: {image: busybox, command: [echo, "{{inputs.parameters.m}}"]}
    """))
    assert validate_all(docs) == []


def test_workflow_template_ref_and_documents_of_one_file():
    docs = load_documents(textwrap.dedent("""
    apiVersion: argoproj.io/v1alpha1
    kind: WorkflowTemplate
    metadata: {name: lib}
    spec:
      entrypoint: say
      arguments: {parameters: [{name: m, value: x}]}
      templates:
      - name: say
        container: {image: busybox, command: [echo, "{{workflow.parameters.m}}"]}
    ---
    apiVersion: argoproj.io/v1alpha1
    kind: Workflow
    metadata: {generateName: w-}
    spec:
      workflowTemplateRef: {name: lib}
    ---
    apiVersion: argoproj.io/v1alpha1
    kind: Workflow
    metadata: {generateName: w-}
    spec:
      entrypoint: nope
      workflowTemplateRef: {name: lib}
    """))
    assert [str(i) for i in validate_all(docs)] == [
        "document 3: spec.entrypoint: template 'nope' not found in WorkflowTemplate 'lib'"]


def test_cron_workflow_schedules_and_inner_spec():
    text = """
apiVersion: argoproj.io/v1alpha1
kind: CronWorkflow
metadata: {name: nightly}
spec:
  schedules: ["0 3 * * *", "61 * * * *", "CRON_TZ=UTC */5 * * * *", "@every 1h30m", "@daily",
              "@every soon"]
  concurrencyPolicy: Sometimes
  timezone: Mars/Olympus
  workflowSpec:
    entrypoint: mian
    templates:
    - name: main
      container: {image: busybox, command: [echo, "{{workflow.scheduledTime}}"]}
"""
    assert problems(text) == [
        "spec.schedules[1]: cron schedule '61 * * * *' is malformed",
        "spec.schedules[5]: cron schedule '@every soon' is malformed",
        "spec.concurrencyPolicy: 'Sometimes' is not a concurrency policy; use one of "
        "Allow, Forbid, Replace",
        "spec.timezone: unknown time zone 'Mars/Olympus'",
        "spec.workflowSpec.entrypoint: unknown template 'mian' (did you mean 'main'?)",
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


LOCAL = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: l-}
spec:
  entrypoint: main
  podSpecPatch: '{"containers": [{"name": "main"}]}'
  nodeSelector: {disk: ssd}
  synchronization: {mutexes: [{name: one}]}
  volumeClaimTemplates: [{metadata: {name: work}, spec: {accessModes: [ReadWriteOnce]}}]
  volumes: [{name: scratch, emptyDir: {}}, {name: data, persistentVolumeClaim: {claimName: d}}]
  templates:
  - name: main
    steps: [[{name: a, template: k}, {name: b, template: c}]]
  - name: k
    resource: {action: create, manifest: "kind: ConfigMap"}
  - name: c
    memoize: {key: k, maxAge: 1h, cache: {configMap: {name: cache}}}
    inputs:
      parameters: [{name: p, valueFrom: {configMapKeyRef: {name: cm, key: k}}}]
      artifacts: [{name: g, path: /g, gcs: {bucket: b, key: k}}, {name: s, path: /s, s3: {key: k}}]
    container:
      image: busybox
      resources: {limits: {cpu: "1"}}
      env: [{name: T, valueFrom: {secretKeyRef: {name: s, key: k}}}]
"""


def test_local_runtime_reports_what_it_cannot_honour():
    res = load(LOCAL)
    assert validate(res) == []
    found = validate(res, runtime="local")
    places = ["spec.templates[1].resource", "spec.templates[2].inputs.artifacts[0].gcs",
              "spec.templates[2].inputs.parameters[0].valueFrom.configMapKeyRef",
              "spec.volumeClaimTemplates", "spec.volumes[1]"]
    labels = ["resource template", "gcs artifact", "ConfigMap reference (configMapKeyRef)",
              "volumeClaimTemplates (PersistentVolumeClaim)", "persistentVolumeClaim volume"]
    assert [i.path for i in found] == places
    assert [i.message for i in found] == [
        f"not supported locally: {label} at {place}" for label, place in zip(labels, places)]
    # rendered once, without repeating the place
    assert str(found[0]) == ("not supported locally: resource template at "
                             "spec.templates[1].resource")


def test_local_table_is_data_the_engine_can_shrink():
    assert all(isinstance(row, Unsupported) and row.reason for row in LOCAL_UNSUPPORTED)
    res = load(LOCAL)
    without_resource = tuple(r for r in LOCAL_UNSUPPORTED if "resource template" != r.label)
    found = [i.path for i in local_issues(res, without_resource)]
    assert "spec.templates[1].resource" not in found
    assert "spec.volumeClaimTemplates" in found


def test_cron_workflow_local_paths_are_inside_workflow_spec():
    text = """
apiVersion: argoproj.io/v1alpha1
kind: CronWorkflow
metadata: {name: c}
spec:
  schedule: "* * * * *"
  workflowSpec:
    entrypoint: k
    templates:
    - name: k
      resource: {action: get}
"""
    (issue,) = validate(load(text), runtime="local")
    assert issue.path == "spec.workflowSpec.templates[0].resource"
    assert issue.message == ("not supported locally: resource template at "
                             "spec.workflowSpec.templates[0].resource")


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
