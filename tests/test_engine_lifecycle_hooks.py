"""Lifecycle hooks other than ``exit`` (Argo's ``executeWfLifeCycleHook`` /
``executeTmplLifeCycleHook``, docs/lifecyclehook.md):

- ``spec.hooks.<name>`` and a step's or task's ``hooks.<name>`` run their template as node
  ``<workflow>.hooks.<name>`` / ``<step node>.hooks.<name>`` the first time their
  ``expression`` is true (evaluated on every pass, and once more over the final status
  when the node they guard ends), at most once; an expression never true never fires.
- The step (its exit hook, the next group) and the workflow (its exit handler, its end)
  wait for the hooks that started; a hook's ``Failed`` end changes no phase, an ``Error``
  fails the steps or DAG template of its step; a workflow-level expression that cannot be
  evaluated ends the workflow in ``Error``.
- Durable: a replay (a controller killed and another adopting the run) re-attaches the
  hook recorded in the store instead of firing it again.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from chute.engine import phases as P
from chute.engine.plan import build_plan
from chute.engine.pod import PodOutcome
from chute.engine.state import RunState
from chute.spec.loader import load_documents
from chute.spec.validate import validate
from tests.test_engine_exit_vars import doc, run

SAY = """
- name: say
  inputs: {parameters: [{name: m}]}
  container: {image: busybox, command: [echo, "{{inputs.parameters.m}}"]}
"""

STEPS = """
entrypoint: main
hooks:
  exit: {template: say, arguments: {parameters: [{name: m, value: "exit {{workflow.status}}"}]}}
  running:
    expression: workflow.status == "Running"
    template: say
    arguments: {parameters: [{name: m, value: "wf-running"}]}
  done:
    expression: workflow.status == "Succeeded"
    template: say
    arguments: {parameters: [{name: m, value: "wf-succeeded {{workflow.status}}"}]}
  never:
    expression: workflow.status == "Error"
    template: say
    arguments: {parameters: [{name: m, value: "never"}]}
templates:
- name: main
  steps:
  - - name: step-1
      template: say
      arguments: {parameters: [{name: m, value: "s1"}]}
      hooks:
        running:
          expression: steps["step-1"].status == "Running"
          template: say
          arguments: {parameters: [{name: m, value: "s1-running {{steps.step-1.status}}"}]}
        success:
          expression: steps["step-1"].status == "Succeeded"
          template: say
          arguments: {parameters: [{name: m, value: "s1-ok"}]}
        exit: {template: say, arguments: {parameters: [{name: m, value: "s1-exit"}]}}
  - - name: step2
      template: say
      arguments: {parameters: [{name: m, value: "bad"}]}
      continueOn: {failed: true}
      hooks:
        success:
          expression: steps.step2.status == "Succeeded"
          template: say
          arguments: {parameters: [{name: m, value: "s2-ok"}]}
        failed:
          expression: steps.step2.status == "Failed"
          template: say
          arguments: {parameters: [{name: m, value: "s2-failed"}]}
""" + SAY


def _order(st: RunState) -> list[str]:
    """Display names of the pod nodes in the order they started."""
    pods = [n for n in st.nodes.values() if n.type == P.POD]
    return [n.display_name for n in sorted(pods, key=lambda n: (n.started_at, n.name))]


def test_workflow_and_step_hooks_fire_once_when_their_expression_is_true():
    assert validate(load_documents_of(STEPS)) == []
    st, argv = run(STEPS, fails=("bad",))
    assert st.phase == P.WF_SUCCEEDED
    # every hook whose expression became true ran exactly once, with its arguments
    assert argv == {
        "step-1": ["s1"], "wf.hooks.running": ["wf-running"],
        "step-1.hooks.running": ["s1-running Running"], "step-1.hooks.success": ["s1-ok"],
        "step-1.onExit": ["s1-exit"], "step2": ["bad"], "step2.hooks.failed": ["s2-failed"],
        "wf.hooks.done": ["wf-succeeded Succeeded"], "wf.onExit": ["exit Succeeded"]}
    names = {n.name: n for n in st.nodes.values()}
    # never true: no node; the failed step's success hook did not fire
    assert "wf.hooks.never" not in names and "wf[1].step2.hooks.success" not in names
    # a hook is a child of the node it guards (Argo's addChildNode)
    assert names["wf.hooks.running"].parent_id == st.root.id
    assert names["wf[0].step-1.hooks.success"].parent_id == names["wf[0].step-1"].id
    assert names["wf[0].step-1.hooks.success"].id in names["wf[0].step-1"].children
    order = _order(st)
    # the step's exit hook after its hooks; the next group after both; the workflow's
    # final-status hook after the entrypoint, and its exit handler after that hook
    assert order.index("step-1.hooks.success") < order.index("step-1.onExit") \
        < order.index("step2")
    assert order.index("step2.hooks.failed") < order.index("wf.hooks.done") \
        < order.index("wf.onExit")


def load_documents_of(spec: str):
    import yaml

    return load_documents(yaml.safe_dump(doc(spec)))[0]


DAG = """
entrypoint: main
templates:
- name: main
  dag:
    tasks:
    - name: a
      template: say
      arguments: {parameters: [{name: m, value: "a"}]}
      hooks:
        success:
          expression: tasks.a.status == "Succeeded"
          template: say
          arguments: {parameters: [{name: m, value: "a-ok {{tasks.a.status}}"}]}
    - name: b
      template: say
      depends: a
      withItems: [x, y]
      arguments: {parameters: [{name: m, value: "b-{{item}}"}]}
      hooks:
        success:
          expression: tasks.b.status == "Succeeded"
          template: say
          arguments: {parameters: [{name: m, value: "b-ok {{item}}"}]}
        late:
          expression: tasks.a.status == "Failed"
          template: say
          arguments: {parameters: [{name: m, value: "never"}]}
    - name: c
      template: say
      when: "1 == 2"
      arguments: {parameters: [{name: m, value: "c"}]}
      hooks:
        skipped:
          expression: tasks.c.status == "Skipped"
          template: say
          arguments: {parameters: [{name: m, value: "c-skipped"}]}
        success:
          expression: tasks.c.status == "Succeeded"
          template: say
          arguments: {parameters: [{name: m, value: "never"}]}
""" + SAY


def test_dag_task_hooks_see_their_task_and_fire_per_item():
    st, argv = run(DAG)
    assert st.phase == P.WF_SUCCEEDED
    assert argv["a.hooks.success"] == ["a-ok Succeeded"]
    # an expanded task runs its hooks once per item (the item's own status)
    assert argv["b(0:x).hooks.success"] == ["b-ok x"]
    assert argv["b(1:y).hooks.success"] == ["b-ok y"]
    assert not [k for k in argv if "late" in k]
    # a skipped task has hooks too (Argo evaluates those of every node it created)
    assert argv["c.hooks.skipped"] == ["c-skipped"] and "c" not in argv
    assert "never" not in {m for ms in argv.values() for m in ms}
    order = _order(st)
    assert order.index("a.hooks.success") < order.index("b(0:x)")  # dependants wait


def test_hook_failed_is_ignored_hook_error_fails_the_template():
    spec = """
entrypoint: main
templates:
- name: main
  steps:
  - - name: a
      template: say
      arguments: {parameters: [{name: m, value: "a"}]}
      hooks:
        ok: {expression: steps.a.status == "Succeeded", template: say,
             arguments: {parameters: [{name: m, value: "bad-hook"}]}}
""" + SAY
    st, _ = run(spec, fails=("bad",))
    assert st.phase == P.WF_SUCCEEDED  # the hook Failed: ignored
    assert st.nodes[_id(st, "wf[0].a.hooks.ok")].phase == P.FAILED
    # a hook that cannot start (no such template) ends Error: it fails the template,
    # continueOn notwithstanding
    st, _ = run(spec.replace("ok: {expression", "ok: {continueOn: {failed: true}, expression")
                .replace("template: say,\n", "template: nope,\n"))
    assert st.nodes[_id(st, "wf[0].a.hooks.ok")].phase == P.ERROR
    assert st.nodes[_id(st, "wf[0].a")].phase == P.SUCCEEDED
    assert st.phase == P.WF_FAILED


def test_a_workflow_hook_expression_that_is_not_boolean_errors_the_workflow():
    spec = """
entrypoint: main
hooks:
  odd: {expression: workflow.name, template: say, arguments: {parameters: [{name: m, value: x}]}}
templates:
- name: main
  steps:
  - - {name: a, template: say, arguments: {parameters: [{name: m, value: a}]}}
""" + SAY
    st, argv = run(spec)
    assert st.phase == P.WF_ERROR and "hooks.odd.expression" in (st.message or "")
    assert argv == {"a": ["a"]}


def _id(st: RunState, name: str) -> str:
    return next(n.id for n in st.nodes.values() if n.name == name)


def test_a_replay_reattaches_a_fired_hook_and_never_fires_it_again():
    """The state rebuilt from the recorded nodes (a restart) after step-1 ended while its
    ``running`` hook still runs: that hook's expression is false now, yet its recorded
    node is re-attached (not lost, not launched again) and the workflow waits for it."""
    plan = build_plan(doc(STEPS), uid="uid-1", created_at=1000.0)
    st = RunState(plan, now=1000.0)
    st.start()
    launched: Counter[str] = Counter()
    ids: dict[str, str] = {}
    for _ in range(3):  # step-1 and wf.hooks.running, then step-1's running hook
        for req in st.drain().launches:
            name = st.nodes[req.node_id].display_name
            launched[name] += 1
            ids[name] = req.node_id
            st.mark_running(req.node_id, f"/steps/{req.node_id}", 1001.0)
            if name == "wf.hooks.running":
                st.pod_finished(req.node_id, PodOutcome(P.SUCCEEDED, 0, ""), 1002.0)
        st.proceed()
    assert launched == {"step-1": 1, "wf.hooks.running": 1, "step-1.hooks.running": 1}
    st.pod_finished(ids["step-1"], PodOutcome(P.SUCCEEDED, 0, ""), 1003.0)
    assert [st.nodes[r.node_id].display_name for r in st.drain().launches] == [
        "step-1.hooks.success"]  # decided (and recorded), never started: then a crash
    recorded = {n.id: n for n in st.nodes.values()}
    st2 = RunState(build_plan(doc(STEPS), uid="uid-1", created_at=1000.0), now=1004.0,
                   recorded=recorded)
    st2.start()
    d = st2.drain()
    assert [n.display_name for n in d.reattach] == ["step-1.hooks.running"]
    assert [st2.nodes[r.node_id].display_name for r in d.launches] == ["step-1.hooks.success"]
    again: Counter[str] = Counter()
    pending = [ids["step-1.hooks.running"], *(r.node_id for r in d.launches)]
    while not st2.done:
        for nid in pending:
            again[st2.nodes[nid].display_name] += 1
            if st2.nodes[nid].phase == P.PENDING:
                st2.mark_running(nid, "/s", 1005.0)
            st2.pod_finished(nid, PodOutcome(P.SUCCEEDED, 0, ""), 1006.0)
        pending = [r.node_id for r in st2.drain().launches]
        assert pending or st2.done, "stalled"
    assert st2.phase == P.WF_SUCCEEDED
    # the running hook ended before the step went on (its exit hook, step2)
    assert again["step-1.hooks.running"] == again["step-1.hooks.success"] == 1
    assert "wf.hooks.running" not in again
    names = Counter(n.name for n in st2.nodes.values())
    assert all(c == 1 for c in names.values())
    assert all(P.is_terminal(n.phase) for n in st2.nodes.values())


CTL = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: hooked}
spec:
  entrypoint: main
  hooks:
    running:
      expression: workflow.status == "Running"
      template: say
      arguments: {parameters: [{name: m, value: wf-running}]}
  templates:
  - name: main
    steps:
    - - name: slow
        template: say
        arguments: {parameters: [{name: m, value: slow}]}
        hooks:
          running:
            expression: steps.slow.status == "Running"
            template: say
            arguments: {parameters: [{name: m, value: slow-running}]}
          success:
            expression: steps.slow.status == "Succeeded"
            template: say
            arguments: {parameters: [{name: m, value: slow-ok}]}
          never:
            expression: steps.slow.status == "Error"
            template: say
            arguments: {parameters: [{name: m, value: never}]}
  - name: say
    inputs: {parameters: [{name: m}]}
    container: {image: busybox, command: [echo, "{{inputs.parameters.m}}"]}
"""


def test_a_controller_killed_after_hooks_fired_does_not_fire_them_again(chute_home):
    """Real controllers and SQLite store: the first one fires the workflow's and the
    step's ``running`` hooks while ``slow`` runs, then dies (no lease released, nothing
    flushed after); the one adopting the run re-attaches ``slow`` (its process survived),
    fires ``success`` once, and launches neither ``running`` hook again."""
    from chute.config import load_settings
    from chute.engine.controller import Controller
    from chute.engine.fake import FakeExecutor
    from chute.engine.submit import submit
    from chute.executors.base import SUCCEEDED, StepResult
    from chute.store import queries as q
    from chute.store.db import open_store

    settings = load_settings().ensure()
    store = open_store(settings)

    class Steps(FakeExecutor):
        """``slow`` runs until released; every step "survives" a controller's death."""

        released = False

        def poll(self, handle):
            slow = any(Path(s.step_dir) == Path(handle.step_dir) and s.argv[-1] == "slow"
                       for s in self.launched)
            return None if slow and not self.released else super().poll(handle)

    ex = Steps(lambda spec: StepResult(SUCCEEDED, 0))
    row = submit(store, load_documents(CTL)[0])

    def hooks_in_store() -> dict[str, str]:
        with store.read() as s:
            return {n.name: n.phase for n in q.nodes_of(s, row.uid) if ".hooks." in n.name}

    first = Controller(store, settings, ex, lease_ttl=0.5)
    assert first.adopt(row.uid)
    deadline = time.monotonic() + 20
    while hooks_in_store() != {"hooked.hooks.running": P.SUCCEEDED,
                               "hooked[0].slow.hooks.running": P.SUCCEEDED}:
        assert time.monotonic() < deadline, hooks_in_store()
        if not first.turn():
            time.sleep(0.01)
    del first  # killed: its lease is left to expire
    time.sleep(0.6)
    ex.released = True
    second = Controller(store, settings, ex, lease_ttl=5)
    try:
        second.run_until_done([row.uid], timeout=30)
    finally:
        second.close()
    ran = Counter(spec.argv[-1] for spec in ex.launched)
    assert ran == {"wf-running": 1, "slow": 1, "slow-running": 1, "slow-ok": 1}
    with store.read() as s:
        assert q.find_workflow(s, row.uid).phase == P.WF_SUCCEEDED
        names = Counter(n.name for n in q.nodes_of(s, row.uid))
    assert all(c == 1 for c in names.values())
    assert hooks_in_store() == {"hooked.hooks.running": P.SUCCEEDED,
                                "hooked[0].slow.hooks.running": P.SUCCEEDED,
                                "hooked[0].slow.hooks.success": P.SUCCEEDED}
    store.dispose()


def test_the_workflow_waits_for_a_hook_still_running_when_its_entrypoint_ends():
    """Argo's ``operate`` returns while a workflow-level hook is not fulfilled: the exit
    handler and the workflow's end wait for it; its failure changes no phase."""
    spec = """
entrypoint: main
onExit: bye
hooks:
  running:
    expression: workflow.status == "Running"
    template: say
    arguments: {parameters: [{name: m, value: hook}]}
templates:
- name: main
  steps:
  - - {name: a, template: say, arguments: {parameters: [{name: m, value: a}]}}
- name: bye
  container: {image: busybox, command: [echo, "bye {{workflow.status}}"]}
""" + SAY
    st = RunState(build_plan(doc(spec), uid="uid-1", created_at=1000.0), now=1000.0)
    st.start()
    ids = {st.nodes[r.node_id].display_name: r.node_id for r in st.drain().launches}
    assert set(ids) == {"a", "wf.hooks.running"}
    for nid in ids.values():
        st.mark_running(nid, "/s", 1001.0)
    st.pod_finished(ids["a"], PodOutcome(P.SUCCEEDED, 0, ""), 1002.0)
    assert not st.drain().launches and not st.done  # bye waits for the hook
    assert st.nodes[st.root.id].phase == P.SUCCEEDED
    st.pod_finished(ids["wf.hooks.running"], PodOutcome(P.FAILED, 1, "Error (exit code 1)"),
                    1003.0)
    [bye] = st.drain().launches
    assert bye.argv[-1] == "bye Succeeded"
    st.mark_running(bye.node_id, "/s", 1004.0)
    st.pod_finished(bye.node_id, PodOutcome(P.SUCCEEDED, 0, ""), 1005.0)
    assert st.phase == P.WF_SUCCEEDED and st.finished_at == 1005.0


def test_terminate_cancels_a_running_hook_and_starts_no_new_one():
    spec = """
entrypoint: main
hooks:
  running:
    expression: workflow.status == "Running"
    template: say
    arguments: {parameters: [{name: m, value: hook}]}
  failed:
    expression: workflow.status == "Failed"
    template: say
    arguments: {parameters: [{name: m, value: failed}]}
templates:
- name: main
  steps:
  - - {name: a, template: say, arguments: {parameters: [{name: m, value: a}]}}
""" + SAY
    st = RunState(build_plan(doc(spec), uid="uid-1", created_at=1000.0), now=1000.0)
    st.start()
    ids = {st.nodes[r.node_id].display_name: r.node_id for r in st.drain().launches}
    for nid in ids.values():
        st.mark_running(nid, "/s", 1001.0)
    st.request_shutdown("Terminate")
    d = st.drain()
    assert sorted(n.display_name for n in d.cancels) == ["a", "wf.hooks.running"]
    for nid in ids.values():
        st.pod_finished(nid, PodOutcome(P.FAILED, None, "cancelled"), 1002.0)
    assert st.phase == P.WF_FAILED and not st.drain().launches
    assert not [n for n in st.nodes.values() if n.name.endswith("hooks.failed")]
