"""Semantic validation of variables, expressions and parameters: each reference resolved
against what its place can see."""

from __future__ import annotations

from tests.fixtures.spec_text import problems, wf


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
