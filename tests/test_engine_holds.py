"""Held commits (chute.engine.holds): a turn of steps that die with the controller only
(ended, and their successors started early) is committed with the next ones, within
``hold_seconds``; everything still ends up journaled, and anything else commits at once.

On ReportingFakeExecutor (``ephemeral=True``: its attempts die with the process, as a
reused worker's), through the real Controller and a real SQLite store."""

from __future__ import annotations

import time

import pytest

import chute.engine.controller as controller_module
from chute.config import load_settings
from chute.engine.controller import Controller
from chute.engine.fake import ReportingFakeExecutor
from chute.engine.holds import HOLD_STEPS, merge
from chute.engine.nodes import Node
from chute.engine.state import Decisions
from chute.engine.submit import submit
from chute.spec.loader import load_resource
from chute.store import leases
from chute.store import queries as q
from chute.store.db import open_store
from tests.test_engine_early_launch import Watching, drive, journaled, run_doc, steal_at_t3
from tests.test_engine_turns import chain, fanout


@pytest.fixture
def store(chute_home):
    s = open_store(load_settings().ensure())
    yield s
    s.dispose()


def _count_commits(monkeypatch) -> list[int]:
    """Patch the controller's commit to count the steps each one records as started."""
    commits: list[int] = []
    real = controller_module.commit_decisions

    def counting(store, owner, ttl, decisions, starting, now):
        commits.append(len(starting))
        return real(store, owner, ttl, decisions, starting, now)

    monkeypatch.setattr(controller_module, "commit_decisions", counting)
    return commits


@pytest.mark.parametrize("doc", [chain(40), fanout(60)], ids=["chain", "fanout"])
def test_a_chain_of_reused_steps_commits_several_steps_at_once(store, doc, monkeypatch):
    commits = _count_commits(monkeypatch)
    # steps of 1 ms: a hold of 0.5 s covers many turns (bounded by HOLD_STEPS)
    wf, pods, events = run_doc(store, doc, ReportingFakeExecutor(seconds=0.001, ephemeral=True),
                            hold=0.5)
    assert wf.phase == "Succeeded", wf.message
    assert all(p.phase == "Succeeded" for p in pods) and len(pods) == len(
        doc["spec"]["templates"][0]["dag"]["tasks"])
    journaled(pods, events)
    started = [n for n in commits if n]
    assert sum(started) == len(pods)  # every launch recorded, once
    assert len(commits) < len(pods) / 2, commits  # several steps a commit
    if doc["metadata"]["name"] == "turns-chain":  # a step a turn: at most
        assert max(started) <= HOLD_STEPS + 1, commits  # those held, and the turn's own


def test_without_holds_each_turn_commits(store, monkeypatch):
    commits = _count_commits(monkeypatch)
    wf, pods, events = run_doc(store, chain(20), ReportingFakeExecutor(seconds=0.001,
                                                                    ephemeral=True), hold=0)
    assert wf.phase == "Succeeded", wf.message
    assert [n for n in commits if n] == [1] * 20  # a commit for each step's launch
    journaled(pods, events)


def test_other_steps_are_never_held(store, monkeypatch):
    commits = _count_commits(monkeypatch)
    executor = Watching(store, ephemeral=False)
    wf, pods, events = run_doc(store, chain(10), executor, hold=0.5)
    assert wf.phase == "Succeeded", wf.message
    assert set(executor.seen.values()) == {"Running"}  # committed before each launch
    assert [n for n in commits if n] == [1] * 10
    journaled(pods, events)


def test_a_hold_is_committed_when_its_time_is_up_not_at_the_next_event(store):
    """Steps of 0.3 s under a hold of 5 ms: each step's launch is committed while it runs
    (the controller's wait is cut short for the commit), long before it ends."""

    class Checking(ReportingFakeExecutor):
        def __init__(self):
            super().__init__(seconds=0.3, ephemeral=True)
            self.at_end: dict[str, str | None] = {}

        def poll(self, handle):
            result = super().poll(handle)
            if result is not None:
                with store.read() as s:  # a connection of its own: what is committed
                    node = next(n for n in q.nodes_of(s, self._wf)
                                if n.step_dir == str(handle.step_dir))
                self.at_end[node.display_name] = node.phase
            return result

        def launch(self, spec):
            self._wf = spec.workflow_uid
            return super().launch(spec)

    executor = Checking()
    wf, pods, events = run_doc(store, chain(4), executor, hold=0.005)
    assert wf.phase == "Succeeded", wf.message
    assert executor.at_end == {f"t{i}": "Running" for i in range(4)}, executor.at_end
    journaled(pods, events)


def test_an_early_launch_held_when_its_run_was_taken_over_is_never_recorded(store):
    executor = Watching(store, ephemeral=True)
    stolen = steal_at_t3(store, executor)
    row = submit(store, load_resource(chain(8)))
    ctl = Controller(store, load_settings(), executor, owner="me")
    ctl.hold_seconds = 0.5
    try:
        drive(ctl, row.uid)
    finally:
        executor.close()
    assert stolen, "t3 never launched"
    assert row.uid not in ctl.runs  # dropped at the commit that found the lease gone
    with store.read() as s:
        wf = q.get_workflow(s, row.uid)
        recorded = {n.display_name for n in q.nodes_of(s, row.uid) if n.type == "Pod"}
    assert wf.lease_owner == "thief"
    # nothing launched from the steal on was recorded by us (held, then dropped)
    assert recorded < {f"t{i}" for i in range(3)}, recorded
    assert ctl.running == 0
    # the steps still running when the loss was found were cancelled, none other
    assert {d for d, _ in executor.cancelled} <= {str(s.step_dir) for s in executor.launched}


def test_a_run_lost_while_held_is_let_go_of(store):
    """The heartbeat finds the lease taken while turns of the run are held: the run is
    dropped at the next turn with what is held of it, which is never committed, and the
    slots its steps held are freed once (none counted twice)."""
    executor = ReportingFakeExecutor(seconds=0.001, ephemeral=True)
    row = submit(store, load_resource(chain(10)))
    ctl = Controller(store, load_settings(), executor, owner="me")
    ctl.hold_seconds = 60.0
    try:
        held = _hold_three(ctl, row.uid)
        with store.write() as s:
            q.update_workflow(s, row.uid, lease_owner="thief",
                              lease_expires_at=time.time() + 60)
        ctl.renew_leases()  # as the heartbeat would: the run is lost
        ctl.turn()
        assert row.uid not in ctl.runs and ctl.held_for() is None
        assert ctl.running == 0
    finally:
        ctl.close()
        executor.close()
    with store.read() as s:
        launched = leases.launched_attempts(s, [(row.uid, nid, 0) for nid in held])
    assert not launched  # what was held was never written


def test_close_commits_what_is_held(store):
    executor = ReportingFakeExecutor(seconds=0.001, ephemeral=True)
    row = submit(store, load_resource(chain(10)))
    ctl = Controller(store, load_settings(), executor)
    ctl.hold_seconds = 60.0
    try:
        held = _hold_three(ctl, row.uid)
    finally:
        ctl.close()
        executor.close()
    assert ctl.held_for() is None
    with store.read() as s:
        launched = {nid for _, nid, _ in leases.launched_attempts(
            s, [(row.uid, nid, 0) for nid in held])}
        phases = {n.node_id: n.phase for n in q.nodes_of(s, row.uid)}
        wf = q.get_workflow(s, row.uid)
    assert launched == held  # their launches recorded at close
    assert all(phases[nid] in ("Running", "Succeeded") for nid in held), phases
    assert wf.lease_owner is None  # and the lease given up after


def _hold_three(ctl: Controller, uid: str) -> set[str]:
    """Adopt run ``uid`` and turn until three of its steps' launches are held; their ids."""
    ctl.adopt(uid)
    end = time.monotonic() + 30
    while ctl.held_for() is None or len(ctl._held_starting) < 3:
        assert time.monotonic() < end, "never held three steps"
        if not ctl.turn():
            ctl.wait_idle()
    return {req.node_id for _, req in ctl._held_starting}


def _node(nid: str, phase: str = "Running") -> Node:
    return Node(id=nid, name=nid, display_name=nid, type="Pod", phase=phase)


def test_merge_writes_each_node_once_and_keeps_every_event():
    a, b, c = _node("a"), _node("b"), _node("c")
    first = Decisions(new_nodes=[a], changed_nodes=[b], events=[{"id": 1}],
                      workflow={"progress": "1/3"})
    then = Decisions(new_nodes=[c], changed_nodes=[a, b], events=[{"id": 2}, {"id": 3}],
                     workflow={"progress": "2/3", "message": "m"})
    m = merge(first, then)
    assert [n.id for n in m.new_nodes] == ["a", "c"]  # a stays new: its row is not there
    assert [n.id for n in m.changed_nodes] == ["b"]
    assert m.events == [{"id": 1}, {"id": 2}, {"id": 3}]
    assert m.workflow == {"progress": "2/3", "message": "m"}
    assert merge(Decisions(), Decisions()).empty()
