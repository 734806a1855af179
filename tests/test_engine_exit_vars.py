"""What exit handlers see, and how they end when a retried run is terminated, as in Argo.

- A step's or task's exit hook (``onExit`` / ``hooks.exit``) gets its ``arguments``
  substituted with the step or task it guards (``steps.<name>.status``, ``.id``,
  ``.exitCode``, ``.outputs.*``; Argo's ``resolveExitTmplArgument``), and the validator
  accepts exactly those references where Argo's ``validateSteps``/``validateDAG`` do.
- ``{{workflow.status}}`` is a global: ``Running`` while the entrypoint runs, step and task
  handlers included (Argo sets it from the root node's phase), the entrypoint's end in
  the workflow's ``onExit``; ``{{workflow.failures}}`` lists the pods failed so far.
- After ``chute retry`` a ``chute terminate`` keeps the reset exit handlers from running
  again (Argo's retry deletes them, and a terminate never creates them): they end
  Skipped, not Failed, and no node is left Pending or Running.
"""

from __future__ import annotations

import json
import textwrap

import yaml

from chute.engine import phases as P
from chute.engine.control import rerun_rows
from chute.engine.nodes import Node
from chute.engine.plan import build_plan
from chute.engine.pod import PodOutcome
from chute.engine.state import RunState
from chute.spec.loader import load_documents
from chute.spec.validate import validate


def doc(spec: str, name: str = "wf") -> dict:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": name}, "spec": yaml.safe_load(textwrap.dedent(spec))}


def run(spec: str, fails: tuple[str, ...] = ()) -> tuple[RunState, dict[str, list[str]]]:
    """Run to the end; a pod whose last argument starts with one of ``fails`` fails (exit
    1), every other one succeeds writing ``/tmp/p``. Returns the state and, per node
    display name, the argv each of its pods ran."""
    plan = build_plan(doc(spec), uid="uid-1", created_at=1000.0)
    st = RunState(plan, now=1000.0)
    st.start()
    now, argv = 1000.0, {}
    while not st.done:
        d = st.drain()
        assert d.launches, "the run stalled"
        for req in d.launches:
            st.mark_running(req.node_id, f"/steps/{req.node_id}", now)
        for req in d.launches:
            now += 1
            argv.setdefault(st.nodes[req.node_id].display_name, []).append(req.argv[-1])
            bad = req.argv[-1].startswith(fails) if fails else False
            st.pod_finished(req.node_id, PodOutcome(
                P.FAILED if bad else P.SUCCEEDED, 1 if bad else 0,
                "Error (exit code 1)" if bad else "", result="out\n",
                files={"/tmp/p": f"p-of-{req.argv[-1]}"}), now)
    return st, argv


HANDLED = """
entrypoint: main
onExit: final
templates:
- name: main
  steps:
  - - name: a
      template: work
      arguments: {parameters: [{name: m, value: a}]}
      hooks:
        exit:
          template: note
          arguments:
            parameters:
            - name: m
              value: "a {{steps.a.status}} {{steps.a.exitCode}} {{steps.a.outputs.parameters.p}} {{steps.a.outputs.result}} {{steps.a.id}} {{workflow.status}}"
  - - name: b
      template: work
      continueOn: {failed: true}
      arguments: {parameters: [{name: m, value: "bad-b"}]}
      hooks:
        exit:
          template: note
          arguments:
            parameters: [{name: m, value: "b {{steps.b.status}} {{steps.b.exitCode}} {{steps.a.status}}"}]
  - - name: d
      template: dag
- name: dag
  dag:
    tasks:
    - name: T
      template: work
      arguments: {parameters: [{name: m, value: "{{item}}"}]}
      withItems: [x, y]
      hooks:
        exit:
          template: note
          arguments:
            parameters: [{name: m, value: "T {{item}} {{tasks.T.status}} {{tasks.T.outputs.parameters.p}}"}]
    - name: U
      depends: T
      template: retried
      hooks:
        exit:
          template: note
          arguments:
            parameters: [{name: m, value: "U {{tasks.U.status}} {{tasks.U.outputs.parameters.p}} {{tasks.T.status}} F={{workflow.failures}}"}]
- name: work
  inputs: {parameters: [{name: m}]}
  container: {image: busybox, command: [echo, "{{inputs.parameters.m}}"]}
  outputs: {parameters: [{name: p, valueFrom: {path: /tmp/p}}]}
- name: retried
  retryStrategy: {limit: 2}
  container: {image: busybox, command: [echo, "retried {{retries}}"]}
  outputs: {parameters: [{name: p, valueFrom: {path: /tmp/p}}]}
- name: note
  inputs: {parameters: [{name: m}]}
  container: {image: busybox, command: [echo, "{{inputs.parameters.m}}"]}
- name: final
  container: {image: busybox, command: [echo, "final {{workflow.status}} {{workflow.failures}}"]}
"""


def test_step_and_task_exit_hooks_see_the_node_they_guard():
    st, argv = run(HANDLED, fails=("bad-b", "retried 0"))
    a = next(n for n in st.nodes.values() if n.display_name == "a")
    assert argv["a.onExit"] == [f"a Succeeded 0 p-of-a out {a.id} Running"]
    # a failed step's handler sees its failure; earlier steps stay in scope
    assert argv["b.onExit"] == ["b Failed 1 Succeeded"]
    # a looped task's hook runs once per item, with that item's node
    assert argv["T(0:x).onExit"] == ["T x Succeeded p-of-x"]
    assert argv["T(1:y).onExit"] == ["T y Succeeded p-of-y"]
    # a retried task: its last attempt's outputs; the looped task before it aggregated
    (u,) = argv["U.onExit"]
    assert u.startswith("U Succeeded p-of-retried 1 Succeeded F=")
    failures = json.loads(u.split("F=", 1)[1])
    assert sorted(f["displayName"] for f in failures) == ["U(0)", "b"]
    assert st.phase == P.WF_SUCCEEDED
    assert not [x for xs in argv.values() for x in xs if "{{" in x]


STATUS = """
entrypoint: main
onExit: final
templates:
- name: main
  dag:
    tasks:
    - {name: first, template: say, arguments: {parameters: [{name: m, value: "first {{workflow.status}} {{workflow.failures}}"}]}}
    - name: bad
      depends: first
      template: say
      arguments: {parameters: [{name: m, value: "bad"}]}
      onExit: hook
    - name: after
      depends: bad.Failed
      template: say
      arguments: {parameters: [{name: m, value: "after {{workflow.status}} {{=workflow.status}} {{workflow.duration}}"}]}
- name: say
  inputs: {parameters: [{name: m}]}
  container: {image: busybox, command: [echo, "{{inputs.parameters.m}}"]}
- name: hook
  container: {image: busybox, command: [echo, "hook {{workflow.status}}"]}
- name: final
  steps:
  - - {name: cheer, template: fin, when: "{{workflow.status}} == Succeeded"}
    - {name: mourn, template: fin, when: "{{workflow.status}} != Succeeded"}
- name: fin
  container: {image: busybox, command: [echo, "fin {{workflow.status}} {{workflow.failures}}"]}
"""


def test_workflow_status_is_running_until_the_workflow_exit_handler():
    st, argv = run(STATUS, fails=("bad",))
    assert argv["first"] == ["first Running []"]
    assert argv["bad.onExit"] == ["hook Running"]  # a task's handler: the run goes on
    (after,) = argv["after"]  # the duration so far, in seconds: 3 pods of 1 s before it
    assert after.startswith("after Running Running ") and float(after.split()[-1]) == 3.0
    # the workflow's handler sees the end (a DAG whose failure was handled succeeds) and
    # the failure
    (fin,) = argv["cheer"]
    assert fin.startswith("fin Succeeded [")
    (failure,) = json.loads(fin.split(" ", 2)[2])
    assert failure["displayName"] == "bad" and failure["phase"] == P.FAILED
    assert failure["templateName"] == "say" and failure["finishedAt"].endswith("Z")
    assert "mourn" not in argv and st.phase == P.WF_SUCCEEDED


HOOKS = """
entrypoint: main
arguments: {parameters: [{name: who, value: ops}]}
hooks:
  exit:
    template: note
    arguments: {parameters: [{name: m, value: "wf {{workflow.status}} {{workflow.parameters.who}}"}]}
templates:
- name: main
  steps:
  - - name: a
      template: note
      arguments: {parameters: [{name: m, value: a}]}
      hooks: {exit: {template: note, expression: 'steps.a.status == "Failed"', arguments: {parameters: [{name: m, value: "a failed"}]}}}
    - name: b
      template: note
      continueOn: {failed: true}
      arguments: {parameters: [{name: m, value: bad}]}
      hooks: {exit: {template: note, expression: 'steps.b.status == "Failed"', arguments: {parameters: [{name: m, value: "b failed"}]}}}
    - name: c
      template: note
      arguments: {parameters: [{name: m, value: c}]}
      onExit: greet
- name: note
  inputs: {parameters: [{name: m}]}
  container: {image: busybox, command: [echo, "{{inputs.parameters.m}}"]}
- name: greet
  inputs: {parameters: [{name: who}]}
  container: {image: busybox, command: [echo, "hello {{inputs.parameters.who}}"]}
"""


def test_exit_hook_expression_workflow_arguments_and_workflow_level_hook():
    """A hook's ``expression`` decides whether it runs; a hook without arguments
    (``onExit``) gets the workflow's; the workflow's ``hooks.exit`` is its exit handler."""
    st, argv = run(HOOKS, fails=("bad",))
    assert "a.onExit" not in argv  # a succeeded: its hook's expression is false
    assert argv["b.onExit"] == ["b failed"]
    assert argv["c.onExit"] == ["hello ops"]
    assert argv["wf.onExit"] == ["wf Succeeded ops"]
    assert st.phase == P.WF_SUCCEEDED


# -- validation: what Argo's validator accepts in a hook, and what it rejects ------------

def problems(spec: str) -> list[str]:
    text = yaml.safe_dump(doc(spec))
    return [str(i) for i in validate(load_documents(text)[0])]


def test_validator_accepts_the_guarded_node_in_its_hook_as_argo_does():
    assert problems(HANDLED) == []
    assert problems(STATUS) == []
    assert problems(HOOKS) == []
    # onExit (Argo's HasExitHook) puts the guarded step in scope too
    assert problems("""
entrypoint: main
templates:
- name: main
  steps:
  - - {name: a, template: work, onExit: note2, when: "{{steps.a.outputs.parameters.p}} != x"}
- name: work
  container: {image: busybox, command: [echo]}
  outputs: {parameters: [{name: p, valueFrom: {path: /tmp/p}}]}
- name: note2
  container: {image: busybox, command: [echo, "{{workflow.status}} {{workflow.failures}}"]}
""") == []


def test_validator_rejects_what_argo_cannot_resolve_in_a_hook():
    found = problems("""
entrypoint: main
templates:
- name: main
  steps:
  - - name: a
      template: work
      hooks:
        exit:
          template: note
          arguments:
            parameters: [{name: m, value: "{{steps.status}} {{steps.b.status}} {{steps.a.outputs.parameters.q}}"}]
  - - {name: b, template: work}
- name: dag
  dag:
    tasks:
    - name: A
      template: work
      hooks: {exit: {template: note, arguments: {parameters: [{name: m, value: "{{tasks.status}}"}]}}}
- name: work
  container: {image: busybox, command: [echo]}
  outputs: {parameters: [{name: p, valueFrom: {path: /tmp/p}}]}
- name: note
  inputs: {parameters: [{name: m}]}
  container: {image: busybox, command: [echo, "{{inputs.parameters.m}}"]}
""")
    text = "\n".join(found)
    assert len(found) == 4, found
    for tag in ("{{steps.status}}", "{{steps.b.status}}", "{{steps.a.outputs.parameters.q}}",
                "{{tasks.status}}"):
        assert tag in text, tag


# -- retry, then terminate: a reset handler does not run and ends Skipped ------------------

RETRIED = """
entrypoint: main
onExit: final
templates:
- name: main
  steps:
  - - {name: ok, template: say, arguments: {parameters: [{name: m, value: ok}]}}
  - - name: flaky
      template: say
      arguments: {parameters: [{name: m, value: flaky}]}
      hooks: {exit: {template: say, arguments: {parameters: [{name: m, value: "hook {{steps.flaky.status}}"}]}}}
- name: say
  inputs: {parameters: [{name: m}]}
  container: {image: busybox, command: [echo, "{{inputs.parameters.m}}"]}
- name: final
  steps:
  - - {name: report, template: say, arguments: {parameters: [{name: m, value: "final {{workflow.status}}"}]}}
"""


class Store:
    """The node rows a controller commits, and the controller (a RunState) replaying them."""

    def __init__(self, spec: str):
        self.plan = build_plan(doc(spec), uid="uid-1", created_at=1000.0)
        self.rows: dict[str, dict] = {}
        self.now = 1000.0
        self.launched: list[str] = []
        self.st: RunState | None = None
        self.generation = 0

    def adopt(self, shutdown: str | None = None) -> RunState:
        recorded = {nid: Node.from_row(dict(r)) for nid, r in self.rows.items()}
        st = RunState(self.plan, now=self.now, recorded=recorded, generation=self.generation)
        st.restore_control(suspended=False, shutdown=shutdown)
        st.start()
        self.st = st
        return st

    def drive(self, fails: tuple[str, ...] = ()) -> None:
        st = self.st
        assert st is not None
        while True:
            d = st.drain()
            for n in [*d.new_nodes, *d.changed_nodes]:
                self.rows[n.id] = n.to_row()
            if st.done or not d.launches:
                break
            for req in d.launches:
                st.mark_running(req.node_id, f"/s/{req.node_id}", self.now)
            for req in d.launches:
                self.now += 1
                self.launched.append(req.argv[-1])
                bad = req.argv[-1].startswith(fails) if fails else False
                st.pod_finished(req.node_id, PodOutcome(P.FAILED if bad else P.SUCCEEDED,
                                                        1 if bad else 0), self.now)
        if st.done:
            self.generation += 1

    def retry(self) -> None:
        for d in rerun_rows([dict(r) for r in self.rows.values()]):
            self.rows[d["node_id"]] = d

    def phases(self) -> dict[str, tuple[str, str | None]]:
        return {r["display_name"]: (r["phase"], r["message"]) for r in self.rows.values()}


def test_a_terminate_after_retry_skips_the_reset_handlers_and_leaves_nothing_running():
    s = Store(RETRIED)
    s.adopt()
    s.drive(fails=("flaky",))
    assert s.st.phase == P.WF_FAILED
    assert s.phases()["flaky.onExit"][0] == P.SUCCEEDED == s.phases()["wf.onExit"][0]
    s.retry()  # flaky, its handler and the workflow's handler are reset to Pending
    assert {r["display_name"] for r in s.rows.values() if r["phase"] == P.PENDING} >= {
        "flaky", "flaky.onExit", "wf.onExit", "report"}
    s.launched.clear()
    s.adopt(shutdown="Terminate")  # terminated before the retried run got anywhere
    s.st.request_shutdown("Terminate")
    s.drive()
    assert s.st.phase == P.WF_FAILED
    assert s.launched == []  # neither flaky nor any handler ran again
    phases = s.phases()
    # the step (created again and kept from starting) fails as a stopped pod does; the
    # handlers and what is under them, which the terminate never started, are skipped
    assert phases["flaky"] == (P.FAILED, "Stopped with strategy 'Terminate'")
    for name in ("flaky.onExit", "wf.onExit", "report"):
        assert phases[name] == (P.SKIPPED, "Stopped with strategy 'Terminate'"), name
    assert not [n for n, (ph, _) in phases.items() if not P.is_terminal(ph)]
    # the graph keeps its edges into the skipped nodes
    by_name = {r["display_name"]: r for r in s.rows.values()}
    assert by_name["flaky.onExit"]["node_id"] in by_name["flaky"]["children"]


def test_a_handler_created_before_a_terminate_still_fails_as_argo_marks_it():
    """A handler node this run created (committed Pending, never launched) before a
    restart under terminate is not a reset row: Argo runs its template and fails the pod
    it will not create; chute fails it the same way."""
    s = Store(RETRIED)
    s.adopt()
    s.drive(fails=("flaky",))
    s.retry()
    s.adopt()
    st = s.st
    # flaky runs again and fails; its handler is created, committed, not yet launched
    d = st.drain()
    for n in [*d.new_nodes, *d.changed_nodes]:
        s.rows[n.id] = n.to_row()
    (req,) = d.launches
    st.mark_running(req.node_id, "/s/x", s.now)
    st.pod_finished(req.node_id, PodOutcome(P.FAILED, 1), s.now + 1)
    d = st.drain()
    for n in [*d.new_nodes, *d.changed_nodes]:
        s.rows[n.id] = n.to_row()
    assert s.phases()["flaky.onExit"][0] == P.PENDING
    s.adopt(shutdown="Terminate")  # the controller died; then the terminate
    s.drive()
    assert s.phases()["flaky.onExit"] == (P.FAILED, "Stopped with strategy 'Terminate'")
    assert s.phases()["wf.onExit"][0] == P.SKIPPED
    assert all(P.is_terminal(ph) for ph, _ in s.phases().values())


def test_a_retried_run_that_never_reaches_a_reset_node_ends_it():
    """Attempts of a retried step reset by ``chute retry`` that the retried run does not
    need (its first attempt succeeds) are ended Skipped instead of staying Pending in a
    finished workflow (Argo's retry deletes them)."""
    spec = """
entrypoint: main
templates:
- name: main
  steps:
  - - {name: flaky, template: flaky}
- name: flaky
  retryStrategy: {limit: 2}
  container: {image: busybox, command: [echo, "flaky {{retries}}"]}
"""
    s = Store(spec)
    s.adopt()
    s.drive(fails=("flaky",))
    assert [s.phases()[f"flaky({i})"][0] for i in range(3)] == [P.FAILED] * 3
    s.retry()
    s.launched.clear()
    s.adopt()
    s.drive()
    assert s.st.phase == P.WF_SUCCEEDED and s.launched == ["flaky 0"]
    phases = s.phases()
    assert phases["flaky(0)"][0] == P.SUCCEEDED
    for name in ("flaky(1)", "flaky(2)"):
        assert phases[name] == (P.SKIPPED, "not reached when the workflow ran again")
    assert all(P.is_terminal(ph) for ph, _ in phases.values())


REAL = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: retermed}
spec:
  entrypoint: main
  onExit: final
  templates:
  - name: main
    steps:
    - - name: flaky
        template: say
        arguments: {parameters: [{name: m, value: flaky}]}
        hooks: {exit: {template: say, arguments: {parameters: [{name: m, value: "hook {{steps.flaky.status}}"}]}}}
  - name: say
    inputs: {parameters: [{name: m}]}
    container: {image: busybox, command: [echo, "{{inputs.parameters.m}}"]}
  - name: final
    container: {image: busybox, command: [echo, "final {{workflow.status}}"]}
"""


def test_chute_retry_then_terminate_with_the_real_controller_and_store(chute_home):
    """``chute retry`` then ``chute terminate`` (the control API the CLI and the server
    call), a real controller and SQLite store: the handlers the retry reset do not run,
    they end Skipped, and the workflow ends with no node Pending or Running."""
    from chute.config import load_settings
    from chute.engine import control
    from chute.engine.controller import Controller
    from chute.engine.fake import FakeExecutor
    from chute.engine.submit import submit
    from chute.executors.base import FAILED, SUCCEEDED, StepResult
    from chute.store import queries as q
    from chute.store.db import open_store

    settings = load_settings().ensure()
    store = open_store(settings)
    ran: list[str] = []

    def outcome(spec):
        ran.append(spec.argv[-1])
        bad = spec.argv[-1] == "flaky"
        return StepResult(FAILED if bad else SUCCEEDED, 1 if bad else 0)

    def drive(uid: str) -> dict[str, tuple[str, str | None]]:
        ctl = Controller(store, settings, FakeExecutor(outcome), lease_ttl=5)
        try:
            ctl.run_until_done([uid], timeout=30)
        finally:
            ctl.close()
        with store.read() as s:
            return {n.display_name: (n.phase, n.message) for n in q.nodes_of(s, uid)}

    row = submit(store, load_documents(REAL)[0])
    first = drive(row.uid)
    assert ran == ["flaky", "hook Failed", "final Failed"]
    assert first["flaky.onExit"][0] == first["retermed.onExit"][0] == P.SUCCEEDED
    ran.clear()
    control.retry(store, "retermed")
    control.stop(store, "retermed", terminate=True)
    after = drive(row.uid)
    assert ran == []  # nothing ran again: the step was stopped before it started
    with store.read() as s:
        wf = q.find_workflow(s, row.uid)
        assert (wf.phase, wf.message) == ("Failed", "Stopped with strategy 'Terminate'")
    assert after["flaky"] == (P.FAILED, "Stopped with strategy 'Terminate'")
    for name in ("flaky.onExit", "retermed.onExit"):
        assert after[name] == (P.SKIPPED, "Stopped with strategy 'Terminate'"), name
    assert [n for n, (ph, _) in after.items() if not P.is_terminal(ph)] == []
    store.dispose()
