"""``chute retry`` runs the exit handlers again, as Argo's retry does.

Argo's ``FormulateRetryWorkflow`` deletes the workflow's ``<name>.onExit`` nodes and the
nodes under every node it runs again, a step's exit handler among them, so after the
retried run the handlers run again and see its ``{{workflow.status}}``. A succeeded
ordinary step still never runs twice (R-7), and the retry stays durable (R-2): a
controller killed while the retried run's handler starts or runs neither loses nor
duplicates it.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.fixtures.controllers import chute_env, chute_proc, open_store_of
from tests.fixtures.postgres import fresh_database, postgres_server  # noqa: F401

# good and good2 succeed; bad fails until the test lets it pass. good's handler succeeds,
# good2's fails the first time; the workflow's handler is a steps template (a subtree).
HOOKED = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: hooked}
spec:
  entrypoint: main
  onExit: bye
  templates:
  - name: main
    dag:
      tasks:
      - name: good
        template: run
        arguments: {parameters: [{name: what, value: good}]}
        hooks: {exit: {template: note, arguments: {parameters: [{name: s, value: good}]}}}
      - name: good2
        template: run
        arguments: {parameters: [{name: what, value: good2}]}
        hooks: {exit: {template: note, arguments: {parameters: [{name: s, value: good2}]}}}
      - name: bad
        template: run
        dependencies: [good]
        arguments: {parameters: [{name: what, value: bad}]}
        hooks: {exit: {template: note, arguments: {parameters: [{name: s, value: bad}]}}}
  - name: run
    inputs: {parameters: [{name: what}]}
    container: {image: busybox, command: [echo, "run {{inputs.parameters.what}}"]}
  - name: note
    inputs: {parameters: [{name: s}]}
    container: {image: busybox, command: [echo, "note {{inputs.parameters.s}}"]}
  - name: bye
    steps:
    - - {name: report, template: report}
  - name: report
    container: {image: busybox, command: [echo, "report {{workflow.status}}"]}
"""


def test_retry_runs_exit_handlers_again_and_no_succeeded_step(chute_home):
    """In-process controller, fake pods, real SQLite store: after the retry the workflow's
    handler (with the steps under it) and the handler of the retried step run again and
    see Succeeded; a failed handler of a succeeded step runs again; the succeeded steps
    and the succeeded handler of a succeeded step do not."""
    from chute.config import load_settings
    from chute.engine import control
    from chute.engine.controller import Controller
    from chute.engine.fake import FakeExecutor
    from chute.engine.submit import submit
    from chute.executors.base import FAILED, SUCCEEDED, StepResult
    from chute.spec.loader import load_documents
    from chute.store import queries as q
    from chute.store.db import open_store

    settings = load_settings().ensure()
    store = open_store(settings)
    bad_passes = {"now": False}
    ran: list[str] = []  # this run's pods
    ever: set[str] = set()

    def outcome(spec):
        line = spec.argv[-1]
        fails = (line == "run bad" and not bad_passes["now"]) \
            or (line.startswith("note good2") and line not in ever)  # its first time only
        ran.append(line)
        ever.add(line)
        return StepResult(FAILED if fails else SUCCEEDED, 1 if fails else 0)

    def drive(uid: str) -> str:
        ctl = Controller(store, settings, FakeExecutor(outcome), lease_ttl=5)
        try:
            ctl.run_until_done([uid], timeout=30)
        finally:
            ctl.close()
        with store.read() as s:
            return q.find_workflow(s, uid).phase

    def nodes(uid: str) -> dict[str, dict]:
        with store.read() as s:
            return {n.name: q.node_dict(n) for n in q.nodes_of(s, uid)}

    row = submit(store, load_documents(HOOKED)[0])
    assert drive(row.uid) == "Failed"
    assert sorted(ran) == sorted(["run good", "run good2", "run bad", "note good",
                                  "note good2", "note bad", "report Failed"])
    first = nodes(row.uid)
    assert first["hooked.good2.onExit"]["phase"] == "Failed"

    bad_passes["now"] = True
    ran.clear()
    control.retry(store, "hooked")
    assert drive(row.uid) == "Succeeded"
    # the retried step, then its handler; the failed handler of good2; then the
    # workflow's handler, which sees the new status
    assert sorted(ran) == sorted(["run bad", "note bad", "note good2", "report Succeeded"])
    assert ran.index("run bad") < ran.index("note bad") < ran.index("report Succeeded")
    after = nodes(row.uid)
    for name in ("hooked.good", "hooked.good2", "hooked.good.onExit"):
        assert after[name] == first[name], name  # never touched
    for name in ("hooked.bad", "hooked.bad.onExit", "hooked.good2.onExit", "hooked.onExit",
                 "hooked.onExit[0].report"):
        assert after[name]["attempt"] == first[name]["attempt"] + 1, name
        assert after[name]["phase"] == "Succeeded", name
    with store.read() as s:
        events = q.events_of(s, row.uid)
    ids = [e.transition_id for e in events]
    assert len(ids) == len(set(ids))
    handler = after["hooked.onExit[0].report"]["node_id"]
    assert [e.to_phase for e in events if e.node_id == handler
            and e.to_phase in ("Succeeded", "Failed")] == ["Succeeded", "Succeeded"]
    store.dispose()


# a step whose template is a steps template, with a handler: a failure inside it fails
# the step, so the retry runs the step (its Steps node) again, and so its handler
GROUPED = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: grouped}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: inner, template: inner, onExit: note}
  - name: inner
    steps:
    - - {name: ok, template: say, arguments: {parameters: [{name: w, value: ok}]}}
    - - {name: bad, template: say, arguments: {parameters: [{name: w, value: bad}]}}
  - name: say
    inputs: {parameters: [{name: w}]}
    container: {image: busybox, command: [echo, "{{inputs.parameters.w}}"]}
  - name: note
    container: {image: busybox, command: [echo, note]}
"""


def test_retry_runs_the_handler_of_a_retried_steps_node_again(chute_home):
    """The handler of a step whose inner steps failed runs again after them (Argo keeps
    it today, argoproj/argo-workflows#13184; chute runs it again, as for a pod step);
    the inner step that succeeded does not."""
    from chute.config import load_settings
    from chute.engine import control
    from chute.engine.controller import Controller
    from chute.engine.fake import FakeExecutor
    from chute.engine.submit import submit
    from chute.executors.base import FAILED, SUCCEEDED, StepResult
    from chute.spec.loader import load_documents
    from chute.store import queries as q
    from chute.store.db import open_store

    settings = load_settings().ensure()
    store = open_store(settings)
    ran: list[str] = []
    bad_passes = {"now": False}

    def outcome(spec):
        ran.append(spec.argv[-1])
        fails = spec.argv[-1] == "bad" and not bad_passes["now"]
        return StepResult(FAILED if fails else SUCCEEDED, 1 if fails else 0)

    def drive(uid: str) -> str:
        ctl = Controller(store, settings, FakeExecutor(outcome), lease_ttl=5)
        try:
            ctl.run_until_done([uid], timeout=30)
        finally:
            ctl.close()
        with store.read() as s:
            return q.find_workflow(s, uid).phase

    row = submit(store, load_documents(GROUPED)[0])
    assert drive(row.uid) == "Failed" and sorted(ran) == ["bad", "note", "ok"]
    ran.clear()
    bad_passes["now"] = True
    control.retry(store, "grouped")
    assert drive(row.uid) == "Succeeded" and ran == ["bad", "note"]
    with store.read() as s:
        handler = next(n for n in q.nodes_of(s, row.uid) if n.name == "grouped[0].inner.onExit")
        assert (handler.phase, handler.attempt) == ("Succeeded", 1)
    store.dispose()


# The CLI, real processes: ``flaky`` fails while FLAG is absent; the handler appends the
# workflow's status to STATUSES and also returns it as an output parameter.
FLAKY = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: flaky}
spec:
  entrypoint: main
  onExit: report
  templates:
  - name: main
    steps:
    - - {name: once, template: once}
    - - {name: flaky, template: flaky}
  - name: once
    container: {image: busybox, command: [sh, -c, "echo ran >> COUNT"]}
  - name: flaky
    container: {image: busybox, command: [sh, -c, "test -f FLAG"]}
  - name: report
    container:
      image: busybox
      command: [sh, -c, "sleep 0.5; echo {{workflow.status}} >> STATUSES; echo {{workflow.status}} > /tmp/s"]
    outputs: {parameters: [{name: seen, valueFrom: {path: /tmp/s}}]}
"""


def _flaky(tmp: Path) -> tuple[Path, Path, Path, Path]:
    spec, flag, count, statuses = (tmp / n for n in ("flaky.yaml", "flag", "count", "statuses"))
    spec.write_text(FLAKY.replace("COUNT", str(count)).replace("FLAG", str(flag))
                    .replace("STATUSES", str(statuses)))
    return spec, flag, count, statuses


def _handler_record(env: dict[str, str]) -> tuple[str | None, list[str]]:
    """The workflow handler's output ``seen`` and the ends its node journaled."""
    from chute.store import queries as q

    store, _ = open_store_of(env)
    try:
        with store.read() as s:
            row = q.get_workflow(s, "flaky")
            node = next(n for n in q.nodes_of(s, row.uid) if n.name == "flaky.onExit")
            params = (q.node_dict(node)["outputs"] or {}).get("parameters") or []
            ends = [e.to_phase for e in q.events_of(s, row.uid) if e.node_id == node.node_id
                    and e.to_phase in ("Succeeded", "Failed", "Error")]
            return next((p["value"] for p in params if p["name"] == "seen"), None), ends
    finally:
        store.dispose()


def _retry_trial(tmp: Path, crash_at: str | None, db_url: str | None = None) -> None:
    spec, flag, count, statuses = _flaky(tmp)
    env = chute_env(tmp / "home", db_url, lease_ttl=1)
    store, _ = open_store_of(env)  # migrated here, before the processes race to do it
    store.dispose()
    first = chute_proc("submit", spec, "--wait", env=env)
    out, err = first.communicate(timeout=90)
    assert first.returncode == 1, (out, err)
    assert statuses.read_text().split() == ["Failed"]
    flag.touch()
    marker = tmp / "crashed"
    armed = dict(env, CHUTE_CRASH_AT=crash_at, CHUTE_CRASH_MARKER=str(marker)) \
        if crash_at else env
    again = chute_proc("retry", "flaky", "--wait", env=armed)
    out, err = again.communicate(timeout=90)
    if crash_at:
        # the controller died while the retried run's handler was starting or running
        assert again.returncode == -signal.SIGKILL and marker.exists(), (out, err)
        later = chute_proc("wait", "flaky", env=env)  # adopts once the lease expired
        out, err = later.communicate(timeout=90)
    assert "flaky Succeeded" in out, (out, err)
    # the handler ran once more, after the retried run, and saw its status
    assert statuses.read_text().split() == ["Failed", "Succeeded"]
    assert _handler_record(env) == ("Succeeded", ["Succeeded", "Succeeded"])
    assert count.read_text().split() == ["ran"]  # the succeeded step ran once


def test_cli_retry_runs_the_exit_handler_again(tmp_path):
    """``chute retry --wait``: the handler records Failed, then Succeeded."""
    _retry_trial(tmp_path, None)


# 2nd hit: the first is the retried step's own launch, the second the handler's
@pytest.mark.parametrize("point", ["flush.running_committed:2", "launch.spawned:2"])
def test_retry_with_a_controller_crash_at_the_handler(tmp_path, point):
    """R-2 for the retry: SIGKILL the controller once the handler is committed Running
    but not launched (it is launched by the adopter, once) or once its supervisor was
    started (the adopter re-attaches to it): it runs exactly once more either way."""
    _retry_trial(tmp_path, point)


@pytest.mark.postgres
def test_retry_with_a_controller_crash_at_the_handler_postgres(tmp_path,
                                                              postgres_server):  # noqa: F811
    with fresh_database(postgres_server) as url:
        _retry_trial(tmp_path, "launch.spawned:2", url)
