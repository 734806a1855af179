"""Lease fencing in the controller's commit: a controller whose lease on a run was taken
over between two turns writes and launches nothing more for it (its steps keep running
for the new owner, which re-attaches them and completes the run with no step executed
twice), and a duplicate launch (IntegrityError on step_executions) drops the run instead
of crashing the loop. On SQLite and on PostgreSQL."""

from __future__ import annotations

import logging
import time

from chute.config import load_settings
from chute.engine.controller import Controller
from chute.engine.fake import FakeExecutor
from chute.engine.nodes import node_id
from chute.engine.submit import submit
from chute.executors.local import LocalExecutor
from chute.spec.loader import load_documents
from chute.store import leases
from chute.store import queries as q
from chute.store.db import open_store
from chute.store.models import StepExecutionRow
from tests.fixtures import controllers
from tests.fixtures.postgres import postgres_server, postgres_url  # noqa: F401

db_url = controllers.db_url  # the fixture: SQLite and PostgreSQL

CHAIN = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: fence}}
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {{name: t0, template: step, arguments: {{parameters: [{{name: n, value: '0'}}]}}}}
      - {{name: t1, template: step, dependencies: [t0],
          arguments: {{parameters: [{{name: n, value: '1'}}]}}}}
      - {{name: t2, template: step, dependencies: [t1],
          arguments: {{parameters: [{{name: n, value: '2'}}]}}}}
  - name: step
    inputs: {{parameters: [{{name: n}}]}}
    container:
      image: busybox
      command: [sh, -c, "echo {{{{inputs.parameters.n}}}} >> {marker}; sleep {sleep}"]
"""


def _store(chute_home, db_url):
    env = {"CHUTE_HOME": str(chute_home)}
    if db_url:
        env["CHUTE_DATABASE_URL"] = db_url
    settings = load_settings(env).ensure()
    return open_store(settings), settings


def _steal(store, uid: str, owner: str) -> None:
    """What an adopting controller's claim does: the lease is someone else's now."""
    with store.write() as s:
        q.update_workflow(s, uid, lease_owner=owner, lease_expires_at=time.time() + 60)


def test_a_stolen_lease_stops_the_old_owner_and_the_new_one_completes(
        chute_home, tmp_path, db_url, caplog):
    store, settings = _store(chute_home, db_url)
    marker = tmp_path / "marker.txt"
    row = submit(store, load_documents(CHAIN.format(marker=marker, sleep=0.5))[0])
    executor = LocalExecutor().start()
    old = Controller(store, settings, executor, owner="old-owner", lease_ttl=30)
    new = Controller(store, settings, executor, owner="new-owner", lease_ttl=30)
    try:
        assert old.adopt(row.uid)
        deadline = time.monotonic() + 30
        while not old.runs[row.uid].handles:  # t0 is running under the old owner
            old.turn()
            assert time.monotonic() < deadline
        _steal(store, row.uid, "new-owner")
        with caplog.at_level(logging.WARNING, logger="chute.engine"):
            deadline = time.monotonic() + 10  # t0 ends meanwhile: its result is not ours
            while time.monotonic() < deadline and row.uid in old.runs:
                old.turn()
                time.sleep(0.01)
            for _ in range(20):  # more turns after dropping it: no crash, nothing more
                old.turn()
        assert row.uid not in old.runs and old.running == 0
        lost = [r for r in caplog.records if row.uid in r.getMessage()]
        assert len(lost) == 1 and "lease was taken over" in lost[0].getMessage()
        with store.read() as s:  # the old owner wrote nothing after the steal
            assert q.get_workflow(s, row.uid).lease_owner == "new-owner"
            names = {n.display_name: n.phase for n in q.nodes_of(s, row.uid)}
        assert names.get("t0") == "Running" and "t1" not in names
        new.run_until_done([row.uid], timeout=60)  # re-attaches t0, runs t1 and t2
    finally:
        old.close()
        new.close()
        executor.close()
    with store.read() as s:
        wf = q.get_workflow(s, row.uid)
        execs = s.query(StepExecutionRow).filter_by(workflow_uid=row.uid).all()
    store.dispose()
    assert wf.phase == "Succeeded", wf.message
    assert sorted(marker.read_text().split()) == ["0", "1", "2"]  # each step ran once
    assert sorted((e.owner, e.attempt) for e in execs) == [
        ("new-owner", 0), ("new-owner", 0), ("old-owner", 0)]


def test_a_duplicate_launch_drops_the_run_without_crashing(chute_home, tmp_path, db_url,
                                                           caplog):
    store, settings = _store(chute_home, db_url)
    row = submit(store, load_documents(CHAIN.format(marker=tmp_path / "m", sleep=0))[0])
    other = submit(store, load_documents(
        CHAIN.format(marker=tmp_path / "m2", sleep=0).replace("name: fence", "name: other"))[0])
    executor = FakeExecutor()
    ctl = Controller(store, settings, executor, owner="me", lease_ttl=30)
    try:
        assert ctl.adopt(row.uid) and ctl.adopt(other.uid)
        t1 = node_id("fence", "fence.t1")
        with store.write() as s:  # someone launched t1 attempt 0 already
            leases.record_launches(s, "someone", [(row.uid, t1, 0)], time.time())
        with caplog.at_level(logging.WARNING, logger="chute.engine"):
            ctl.run_until_done([other.uid], timeout=30)  # the other run goes on
            for _ in range(5):
                ctl.turn()
    finally:
        ctl.close()
    with store.read() as s:
        fence = q.get_workflow(s, row.uid)
        done = q.get_workflow(s, other.uid)
        t1_node = [n for n in q.nodes_of(s, row.uid) if n.display_name == "t1"]
    store.dispose()
    assert row.uid not in ctl.runs and done.phase == "Succeeded"
    assert [s.node_id for s in executor.launched if s.workflow_uid == row.uid] == [
        node_id("fence", "fence.t0")]  # t1 never launched by us
    assert not t1_node or t1_node[0].phase != "Running"  # its launch was not committed
    assert fence.phase == "Running" and fence.lease_owner is None  # released for a replay
    assert any("launched already" in r.getMessage() for r in caplog.records)


def test_the_fence_reads_the_lease_and_renews_it_only_past_half_its_time(chute_home, db_url):
    """The commit's fence holds a run only while its lease is ours; it rewrites the lease
    (the whole workflows row, spec included, on SQLite) only once half of it has passed,
    not every turn (D-5: a per-turn rewrite grew each turn's cost with the spec)."""
    store, _ = _store(chute_home, db_url)
    mine = submit(store, load_documents(CHAIN.format(marker="m", sleep=0))[0])
    theirs = submit(store, load_documents(
        CHAIN.format(marker="m", sleep=0).replace("name: fence", "name: theirs"))[0])
    ttl, now = 30.0, 1000.0
    with store.write() as s:
        q.update_workflow(s, mine.uid, lease_owner="me", lease_expires_at=now + 20)
        q.update_workflow(s, theirs.uid, lease_owner="them", lease_expires_at=now + 20)

    def fence(at: float) -> tuple[set[str], float, float]:
        with store.write_conn() as c:
            held = leases.fence_workflows(c, "me", [mine.uid, theirs.uid], at, ttl)
        with store.read() as s:
            return (held, q.find_workflow(s, mine.uid).lease_expires_at,
                    q.find_workflow(s, theirs.uid).lease_expires_at)

    try:
        # 20 s of 30 left: held, not rewritten; the other owner's run is not held
        assert fence(now) == ({mine.uid}, now + 20, now + 20)
        # 14 s left, under half the ttl: renewed to a full ttl from now
        assert fence(now + 6) == ({mine.uid}, now + 6 + ttl, now + 20)
        with store.write() as s:  # taken over: no longer held, nothing written
            q.update_workflow(s, mine.uid, lease_owner="them", lease_expires_at=now + 1)
        assert fence(now + 100) == (set(), now + 1, now + 20)
    finally:
        store.dispose()
