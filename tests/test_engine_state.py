"""The pure state machine, fed events by hand: no processes, no database."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from chute.engine import phases as P
from chute.engine.nodes import Node
from chute.engine.plan import build_plan
from chute.engine.pod import PodOutcome
from chute.engine.state import RunState
from chute.errors import ParameterError


def wf(spec: str, name: str = "wf") -> dict:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": name}, "spec": yaml.safe_load(spec)}


def ok(req) -> PodOutcome:
    """Default outcome: succeed, echoing the last argument as stdout."""
    return PodOutcome(P.SUCCEEDED, 0, result=(req.argv[-1] if req.argv else "") + "\n")


def drive(doc, outcome=ok, params=None, recorded=None, max_running=None):
    """Run a workflow to the end, launching what the state asks for; returns (state, log)."""
    plan = build_plan(doc, uid="uid-1", created_at=1000.0, overrides=params or {})
    st = RunState(plan, now=1000.0, recorded=recorded)
    st.start()
    now, launched, peak = 1000.0, [], 0
    while not st.done:
        d = st.drain()
        if d.launches:
            peak = max(peak, len(d.launches) + 0)
            for req in d.launches:
                st.mark_running(req.node_id, f"/steps/{req.node_id}", now)
            for req in d.launches:
                now += 0.001
                launched.append(req)
                st.pod_finished(req.node_id, outcome(req), now)
            continue
        nt = st.next_timer()
        if nt is None:
            break
        now = nt
        st.tick(now)
    return st, launched


def by_display(st: RunState) -> dict[str, Node]:
    return {n.display_name: n for n in st.nodes.values()}


def test_steps_run_in_groups_and_pass_outputs():
    st, launched = drive(wf("""
entrypoint: main
templates:
- name: main
  steps:
  - - {name: a, template: echo, arguments: {parameters: [{name: m, value: one}]}}
  - - {name: b, template: echo, arguments: {parameters: [{name: m, value: "{{steps.a.outputs.result}}-two"}]}}
- name: echo
  inputs: {parameters: [{name: m}]}
  container: {image: busybox, command: [echo], args: ["{{inputs.parameters.m}}"]}
"""))
    assert st.phase == P.WF_SUCCEEDED
    assert [r.argv for r in launched] == [["echo", "one"], ["echo", "one-two"]]
    nodes = by_display(st)
    assert nodes["[0]"].type == P.STEP_GROUP and nodes["wf"].type == P.STEPS
    assert nodes["b"].outputs["result"] == "one-two"


DIAMOND = """
entrypoint: d
templates:
- name: d
  dag:
    tasks:
    - {name: A, template: pass}
    - {name: B, depends: A, template: pass}
    - {name: C, depends: A, template: fail}
    - {name: should-execute-1, depends: "A && (C.Succeeded || C.Failed)", template: pass}
    - {name: should-execute-2, depends: B || C, template: pass}
    - {name: should-not-execute, depends: B && C, template: pass}
    - {name: should-execute-3, depends: should-execute-2.Succeeded || should-not-execute, template: pass}
- name: pass
  container: {image: busybox, command: [sh, -c, exit 0]}
- name: fail
  container: {image: busybox, command: [sh, -c, exit 1]}
"""


def _by_exit(req):
    code = int(req.argv[-1].split()[-1])
    return PodOutcome(P.SUCCEEDED if code == 0 else P.FAILED, code)


def test_depends_rules_omit_and_handle_failures():
    st, _ = drive(wf(DIAMOND), outcome=_by_exit)
    n = by_display(st)
    assert n["C"].phase == P.FAILED
    assert n["should-not-execute"].phase == P.OMITTED
    assert n["should-not-execute"].type == P.SKIPPED_TYPE
    for t in ("should-execute-1", "should-execute-2", "should-execute-3"):
        assert n[t].phase == P.SUCCEEDED
    # the failure of C is handled by its dependants: the DAG succeeds
    assert st.phase == P.WF_SUCCEEDED


def test_unhandled_failure_fails_the_dag_and_omits_dependants():
    st, _ = drive(wf("""
entrypoint: d
templates:
- name: d
  dag:
    tasks:
    - {name: A, template: fail}
    - {name: B, dependencies: [A], template: pass}
    - {name: C, template: pass}
- name: pass
  container: {image: busybox, command: [sh, -c, exit 0]}
- name: fail
  container: {image: busybox, command: [sh, -c, exit 1]}
"""), outcome=_by_exit)
    n = by_display(st)
    assert n["B"].phase == P.OMITTED and st.phase == P.WF_FAILED


def test_when_false_skips_and_dependants_still_run():
    st, launched = drive(wf("""
entrypoint: d
templates:
- name: d
  dag:
    tasks:
    - {name: A, template: pass, when: "1 == 2"}
    - {name: B, dependencies: [A], template: pass}
- name: pass
  container: {image: busybox, command: [echo, hi]}
"""))
    n = by_display(st)
    assert n["A"].phase == P.SKIPPED and "evaluated false" in n["A"].message
    assert n["B"].phase == P.SUCCEEDED and len(launched) == 1


def test_loop_over_maps_names_and_fields():
    st, launched = drive(wf("""
entrypoint: main
templates:
- name: main
  steps:
  - - name: s
      template: show
      arguments: {parameters: [{name: os, value: "{{item.os}}"}, {name: v, value: "{{item.version}}"}]}
      withItems:
      - {os: debian, version: 9.1}
      - {os: ubuntu, version: 20}
- name: show
  inputs: {parameters: [{name: os}, {name: v}]}
  container: {image: busybox, command: [echo, "{{inputs.parameters.os}}:{{inputs.parameters.v}}"]}
"""))
    assert st.phase == P.WF_SUCCEEDED
    assert sorted(r.argv[-1] for r in launched) == ["debian:9.1", "ubuntu:20"]
    names = {n.display_name for n in st.nodes.values()}
    assert "s(0:os:debian,version:9.1)" in names and "s(1:os:ubuntu,version:20)" in names


def test_nested_loops_and_aggregated_outputs():
    st, launched = drive(wf("""
entrypoint: main
templates:
- name: main
  steps:
  - - {name: outer, template: inner, arguments: {parameters: [{name: x, value: "{{item}}"}]}, withItems: [a, b]}
  - - {name: sum, template: echo, arguments: {parameters: [{name: m, value: "{{steps.outer.outputs.parameters.p}}"}]}}
- name: inner
  inputs: {parameters: [{name: x}]}
  steps:
  - - {name: leaf, template: echo, arguments: {parameters: [{name: m, value: "{{inputs.parameters.x}}{{item}}"}]}, withSequence: {count: "2", start: "1"}}
  outputs:
    parameters:
    - name: p
      valueFrom: {parameter: "{{steps.leaf.outputs.result}}"}
- name: echo
  inputs: {parameters: [{name: m}]}
  container: {image: busybox, command: [echo, "{{inputs.parameters.m}}"]}
"""))
    assert st.phase == P.WF_SUCCEEDED
    leafs = sorted(r.argv[-1] for r in launched[:-1])
    assert leafs == ["a1", "a2", "b1", "b2"]
    # inner results aggregate to JSON lists, then outer's parameter aggregates those
    agg = json.loads(launched[-1].argv[-1])
    assert [json.loads(x) for x in agg] == [["a1", "a2"], ["b1", "b2"]]


def test_with_param_from_output_and_sequence_format():
    st, launched = drive(wf("""
entrypoint: d
templates:
- name: d
  dag:
    tasks:
    - {name: gen, template: gen}
    - {name: use, dependencies: [gen], template: echo, withParam: "{{tasks.gen.outputs.result}}",
       arguments: {parameters: [{name: m, value: "{{item}}"}]}}
    - {name: seq, template: echo, withSequence: {start: "8", end: "10", format: "n%02d"},
       arguments: {parameters: [{name: m, value: "{{item}}"}]}}
- name: gen
  container: {image: busybox, command: [echo, '["x", "y"]']}
- name: echo
  inputs: {parameters: [{name: m}]}
  container: {image: busybox, command: [echo, "{{inputs.parameters.m}}"]}
"""))
    assert st.phase == P.WF_SUCCEEDED
    args = sorted(r.argv[-1] for r in launched)
    assert {"x", "y", "n08", "n09", "n10"} <= set(args)
    assert by_display(st)["use"].type == P.TASK_GROUP


def test_parameters_overrides_enums_and_defaults():
    spec = """
entrypoint: main
arguments: {parameters: [{name: color, value: red, enum: [red, blue]}]}
templates:
- name: main
  inputs: {parameters: [{name: color}, {name: size, default: big}]}
  container: {image: busybox, command: [echo, "{{inputs.parameters.color}}/{{inputs.parameters.size}}/{{workflow.parameters.color}}"]}
"""
    st, launched = drive(wf(spec), params={"color": "blue"})
    assert launched[0].argv[-1] == "blue/big/blue"
    with pytest.raises(ParameterError, match="color"):
        drive(wf(spec), params={"color": "green"})
    with pytest.raises(ParameterError, match="nope"):
        drive(wf(spec), params={"nope": "x"})


def test_missing_input_errors_the_node_naming_the_parameter():
    st, _ = drive(wf("""
entrypoint: main
templates:
- name: main
  steps: [[{name: a, template: t}]]
- name: t
  inputs: {parameters: [{name: needed}]}
  container: {image: busybox, command: [echo]}
"""))
    assert st.phase == P.WF_ERROR or st.phase == P.WF_FAILED
    assert "inputs.parameters.needed was not supplied" in by_display(st)["a"].message


def test_global_name_outputs_become_workflow_outputs():
    st, _ = drive(wf("""
entrypoint: main
templates:
- name: main
  steps:
  - - {name: a, template: gen}
  - - {name: b, template: echo, arguments: {parameters: [{name: m, value: "{{workflow.outputs.parameters.g}}"}]}}
- name: gen
  container: {image: busybox, command: [sh, -c, "echo v > /tmp/v"]}
  outputs: {parameters: [{name: p, globalName: g, valueFrom: {path: /tmp/v}}]}
- name: echo
  inputs: {parameters: [{name: m}]}
  container: {image: busybox, command: [echo, "{{inputs.parameters.m}}"]}
"""), outcome=lambda r: PodOutcome(P.SUCCEEDED, 0, files={"/tmp/v": "val\n"}))
    assert st.global_outputs == {"g": "val"}
    assert by_display(st)["b"].inputs["parameters"][0]["value"] == "val"


def test_suspend_with_duration_waits_on_the_clock():
    plan = build_plan(wf("""
entrypoint: main
templates:
- name: main
  steps: [[{name: wait, template: w}]]
- name: w
  suspend: {duration: "30s"}
"""), uid="u", created_at=0)
    st = RunState(plan, now=100.0)
    st.start()
    assert by_display(st)["wait"].phase == P.RUNNING and st.next_timer() == 130.0
    st.tick(129.0)
    assert not st.done
    st.tick(130.0)
    assert st.done and st.phase == P.WF_SUCCEEDED


def test_workflow_parallelism_limits_running_pods():
    plan = build_plan(wf("""
entrypoint: main
parallelism: 2
templates:
- name: main
  steps: [[{name: s, template: t, withItems: [1, 2, 3, 4, 5]}]]
- name: t
  container: {image: busybox, command: [echo, hi]}
"""), uid="u", created_at=0)
    st = RunState(plan, now=0)
    st.start()
    running, peak, done = [], 0, 0
    while not st.done:
        running += st.drain().launches
        peak = max(peak, len(running))
        req = running.pop(0)
        st.pod_finished(req.node_id, PodOutcome(P.SUCCEEDED, 0), 1.0)
        done += 1
    assert peak == 2 and done == 5


def test_template_parallelism_limits_a_dag():
    plan = build_plan(wf("""
entrypoint: d
templates:
- name: d
  parallelism: 1
  dag:
    tasks:
    - {name: a, template: t}
    - {name: b, template: t}
    - {name: c, template: t}
- name: t
  container: {image: busybox, command: [echo, hi]}
"""), uid="u", created_at=0)
    st = RunState(plan, now=0)
    st.start()
    seen = 0
    while not st.done:
        launches = st.drain().launches
        assert len(launches) == 1
        seen += 1
        st.pod_finished(launches[0].node_id, PodOutcome(P.SUCCEEDED, 0), 1.0)
    assert seen == 3


def test_terminal_states_are_final():
    st, launched = drive(wf("""
entrypoint: t
templates:
- name: t
  container: {image: busybox, command: [echo, hi]}
"""))
    root = st.nodes["wf"]
    assert root.phase == P.SUCCEEDED
    st.pod_finished("wf", PodOutcome(P.FAILED, 1), 5000.0)  # duplicate/late report
    assert root.phase == P.SUCCEEDED and st.phase == P.WF_SUCCEEDED
    with pytest.raises(P.TransitionError):
        P.check_transition("x", P.SUCCEEDED, P.RUNNING)


def test_replay_takes_recorded_results_and_never_reruns_a_success():
    doc = wf("""
entrypoint: main
templates:
- name: main
  steps: [[{name: a, template: t}], [{name: b, template: t}]]
- name: t
  container: {image: busybox, command: [echo, hi]}
""")
    plan = build_plan(doc, uid="u", created_at=0)
    first = RunState(plan, now=0)
    first.start()
    req = first.drain().launches[0]
    first.mark_running(req.node_id, "/s/a", 1.0)
    first.pod_finished(req.node_id, PodOutcome(P.SUCCEEDED, 0, result="hi"), 2.0)
    first.drain()
    recorded = {n.id: Node.from_row(n.to_row()) for n in first.nodes.values()}
    # a new controller rebuilds the run from the spec and the recorded nodes
    st, launched = drive(doc, recorded=recorded)
    assert st.phase == P.WF_SUCCEEDED
    assert [by_display(st)[r.node_id].display_name if r.node_id in by_display(st) else
            st.nodes[r.node_id].display_name for r in launched] == ["b"]


def test_ten_thousand_item_fan_out():
    items = list(range(10_000))
    doc = wf(f"""
entrypoint: main
templates:
- name: main
  steps: [[{{name: s, template: t, arguments: {{parameters: [{{name: i, value: "{{{{item}}}}"}}]}}, withItems: {json.dumps(items)}}}]]
- name: t
  inputs: {{parameters: [{{name: i}}]}}
  container: {{image: busybox, command: [echo, "{{{{inputs.parameters.i}}}}"]}}
""")
    t0 = time.monotonic()
    st, launched = drive(doc)
    assert st.phase == P.WF_SUCCEEDED and len(launched) == 10_000
    assert sorted(int(r.argv[-1]) for r in launched) == items
    assert time.monotonic() - t0 < 60


def test_step_exit_hooks_run_before_the_next_group():
    st, launched = drive(wf("""
entrypoint: main
templates:
- name: main
  steps:
  - - {name: a, template: echo, arguments: {parameters: [{name: m, value: a}]}, hooks: {exit: {template: bye}}}
  - - {name: b, template: echo, arguments: {parameters: [{name: m, value: b}]}, onExit: bye}
- name: echo
  inputs: {parameters: [{name: m}]}
  container: {image: busybox, command: [echo, "{{inputs.parameters.m}}"]}
- name: bye
  container: {image: busybox, command: [echo, cleanup]}
"""))
    assert st.phase == P.WF_SUCCEEDED
    assert [r.argv[-1] for r in launched] == ["a", "cleanup", "b", "cleanup"]
    assert by_display(st)["a.onExit"].phase == P.SUCCEEDED


def test_memoize_hits_a_recorded_result_within_max_age():
    doc = wf("""
entrypoint: t
templates:
- name: t
  memoize: {key: "k-{{workflow.parameters.p}}", maxAge: 10s, cache: {configMap: {name: c}}}
  arguments: {}
  container: {image: busybox, command: [sh, -c, "echo world > /tmp/o"]}
  outputs: {parameters: [{name: hello, valueFrom: {path: /tmp/o}}]}
""".replace("  arguments: {}\n", ""))
    doc["spec"]["arguments"] = {"parameters": [{"name": "p", "value": "1"}]}
    store: dict[str, dict] = {}
    asked = []

    def lookup(name, key, max_age):
        asked.append((name, key, max_age))
        return store.get(f"{name}/{key}")

    plan = build_plan(doc, uid="u1", created_at=0)
    st = RunState(plan, now=0, cache=lookup)
    st.start()
    d = st.drain()
    assert asked == [("c", "k-1", 10.0)] and len(d.launches) == 1
    st.mark_running(d.launches[0].node_id, "/s", 1)
    st.pod_finished(d.launches[0].node_id,
                    PodOutcome(P.SUCCEEDED, 0, files={"/tmp/o": "world\n"}), 2)
    writes = st.drain().cache_writes
    assert writes[0]["key"] == "c/k-1"
    store["c/k-1"] = writes[0]["outputs"]
    again = RunState(build_plan(doc, uid="u2", created_at=0), now=5, cache=lookup)
    again.start()
    d = again.drain()
    assert d.launches == [] and again.phase == P.WF_SUCCEEDED
    root = again.nodes["wf"]
    assert root.cached and {"name": "hello", "value": "world"} in root.outputs["parameters"]


def test_input_artifact_declaration_is_substituted():
    """A key-only input artifact declared by the template itself (Argo's map-reduce:
    ``s3.key: "{{workflow.name}}/results"``) gets the workflow's and its inputs' values."""
    st, _ = drive(wf("""
entrypoint: main
templates:
- name: main
  steps:
  - - {name: r, template: reduce, arguments: {parameters: [{name: part, value: p7}]}}
- name: reduce
  inputs:
    parameters: [{name: part}]
    artifacts:
    - {name: results, path: /mnt/in, s3: {key: "{{workflow.name}}/results/{{inputs.parameters.part}}"}}
  container: {image: busybox, command: [ls, /mnt/in]}
""", name="mr-1"))
    art = by_display(st)["r"].inputs["artifacts"][0]
    assert art["s3"]["key"] == "mr-1/results/p7" and art["path"] == "/mnt/in"


def test_dag_edges_are_added_once():
    st, _ = drive(wf("""
entrypoint: d
templates:
- name: d
  dag:
    tasks:
    - {name: A, template: pass}
    - {name: B, dependencies: [A, A], template: pass}
    - {name: C, depends: "A && A.Succeeded", template: pass}
- name: pass
  container: {image: busybox, command: [sh, -c, exit 0]}
"""))
    nodes = by_display(st)
    assert sorted(st.nodes[c].display_name for c in nodes["A"].children) == ["B", "C"]
    assert [st.nodes[c].display_name for c in nodes["wf"].children] == ["A"]


def test_a_fan_out_parent_is_rewritten_as_its_children_double_not_every_pass():
    """3,000 tasks depend on t0; with the controller's budget they are created 32 a pass,
    each linked to t0. t0 is persisted when its children doubled (and whenever short),
    not in each of the ~100 passes: writing its whole list each time was quadratic (D-5).
    Once a pass adds none, the full list is written (the tasks still running)."""
    n = 3000
    tasks = [{"name": "t0", "template": "s"}] + [
        {"name": f"t{i}", "template": "s", "dependencies": ["t0"]} for i in range(1, n)]
    doc = wf(json.dumps({"entrypoint": "main", "templates": [
        {"name": "main", "dag": {"tasks": tasks}},
        {"name": "s", "container": {"image": "busybox", "command": ["true"]}}]}))
    st = RunState(build_plan(doc, uid="uid-1", created_at=1000.0), now=1000.0)
    st.budget = 32
    st.start()
    now, writes, running = 1000.0, [], []  # t0's children at each write of t0

    def turn() -> None:
        d = st.drain()
        writes.extend(len(x.children) for x in d.new_nodes + d.changed_nodes
                      if x.display_name == "t0")
        for req in d.launches:
            st.mark_running(req.node_id, f"/steps/{req.node_id}", now)
            running.append(req.node_id)

    turn()
    st.pod_finished(running.pop(), PodOutcome(P.SUCCEEDED, 0), now)  # t0: the rest ready
    passes = 0
    while st.pending:  # the tasks are created a slice a pass, and keep running
        st.proceed()
        turn()
        passes += 1
    t0 = by_display(st)["t0"]
    assert len(t0.children) == n - 1 and passes > 90
    assert writes[-1] < n - 1  # the last pass grew it: not written yet (2048 < 2999)
    turn()  # a pass that added no child: the full list is written
    assert writes[-1] == n - 1
    assert writes == sorted(writes) and len(writes) <= 12, writes
    long = [k for k in writes if k >= 128]
    assert all(b >= 2 * a for a, b in zip(long, long[1:-1]))  # doublings
    for nid in running:
        st.pod_finished(nid, PodOutcome(P.SUCCEEDED, 0), now)
    turn()
    assert st.phase == P.WF_SUCCEEDED and writes[-1] == n - 1


def test_a_chain_does_not_rewrite_its_dag_node_for_each_step():
    """A task is created under the DAG node and then hung off its dependency: the DAG
    node's children end as they were (its root task), so it is not persisted again for
    each of the chain's steps; the dependency that gained the child is."""
    n = 50
    tasks = [{"name": "t0", "template": "s"}] + [
        {"name": f"t{i}", "template": "s", "dependencies": [f"t{i - 1}"]} for i in range(1, n)]
    doc = wf(json.dumps({"entrypoint": "main", "templates": [
        {"name": "main", "dag": {"tasks": tasks}},
        {"name": "s", "container": {"image": "busybox", "command": ["true"]}}]}))
    st = RunState(build_plan(doc, uid="uid-1", created_at=1000.0), now=1000.0)
    st.start()
    written: dict[str, list[list[str]]] = {}  # display name -> children at each write
    while not st.done:
        d = st.drain()
        for x in d.new_nodes + d.changed_nodes:
            written.setdefault(x.display_name, []).append(list(x.children))
        for req in d.launches:
            st.mark_running(req.node_id, f"/steps/{req.node_id}", 1000.0)
            st.pod_finished(req.node_id, PodOutcome(P.SUCCEEDED, 0), 1000.0)
    nodes = by_display(st)
    assert st.phase == P.WF_SUCCEEDED
    assert [st.nodes[c].display_name for c in nodes["wf"].children] == ["t0"]
    assert len(written["wf"]) <= 3, written["wf"]  # created, Running, Succeeded at most
    assert all(w == [nodes["t0"].id] for w in written["wf"][1:])
    for i in range(n - 1):  # each step's last write holds its dependant
        assert written[f"t{i}"][-1] == [nodes[f"t{i + 1}"].id]
