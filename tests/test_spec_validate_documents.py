"""Semantic validation across documents (templateRef libraries, workflowTemplateRef),
CronWorkflows, and what the local runtime cannot honour."""

from __future__ import annotations

import textwrap

from chute.spec.loader import load_documents
from chute.spec.validate import template_index, validate, validate_all
from chute.spec.validate_local import LOCAL_UNSUPPORTED, Unsupported, local_issues
from tests.fixtures.spec_text import load, problems, wf


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
