"""Steps that die with their controller (a reused worker's) start while the commit that
records them Running is written; every other step only once it is committed.

On ReportingFakeExecutor (``ephemeral=True``: its attempts die with the process, as a
reused worker's; ``False``: as a supervised process step's). Each launch looks at the
store, through a connection of its own, for the node it is launching: a process step
finds it committed Running, an early step does not (yet), and every transition is
committed all the same by the run's end. An early launch needs the run's lease to hold
for a while still, and one whose run turns out not to be ours at the commit is cancelled.
"""

from __future__ import annotations

import time

import pytest

from chute.config import load_settings
from chute.engine.controller import Controller
from chute.engine.fake import ReportingFakeExecutor
from chute.engine.submit import submit
from chute.spec.loader import load_resource
from chute.store import queries as q
from chute.store.db import open_store
from tests.test_engine_turns import chain, fanout


@pytest.fixture
def store(chute_home):
    s = open_store(load_settings().ensure())
    yield s
    s.dispose()


class Watching(ReportingFakeExecutor):
    """Notes, for each launch, the node's committed phase at that moment (None: no row)."""

    def __init__(self, store, ephemeral: bool):
        super().__init__(seconds=0.002, ephemeral=ephemeral)
        self.store = store
        self.seen: dict[str, str | None] = {}
        self.cancelled: list[tuple[str, str]] = []
        self.before_launch = None  # called with the spec before each launch

    def launch(self, spec):
        if self.before_launch:
            self.before_launch(spec)
        with self.store.read() as s:  # a connection of its own: only what is committed
            row = next((n for n in q.nodes_of(s, spec.workflow_uid)
                        if n.node_id == spec.node_id), None)
        self.seen[spec.node_id] = row.phase if row is not None else None
        return super().launch(spec)

    def cancel(self, handle, reason=""):
        self.cancelled.append((str(handle.step_dir), reason))
        super().cancel(handle, reason)


def run_doc(store, doc, executor, hold: float | None = None, **kw):
    """Run ``doc`` to its end on ``executor`` (``hold``: the controller's hold_seconds);
    (workflow row, pod rows, events)."""
    row = submit(store, load_resource(doc))
    ctl = Controller(store, load_settings(), executor, **kw)
    if hold is not None:
        ctl.hold_seconds = hold
    try:
        ctl.run_until_done([row.uid], timeout=60)
    finally:
        ctl.close()
        executor.close()
    with store.read() as s:
        wf = q.get_workflow(s, row.uid)
        pods = [n for n in q.nodes_of(s, row.uid) if n.type == "Pod"]
        events = q.events_of(s, row.uid)
    return wf, pods, events


@pytest.mark.parametrize("doc", [chain(30), fanout(40)], ids=["chain", "fanout"])
def test_ephemeral_steps_launch_before_their_commit_and_all_is_recorded(store, doc):
    executor = Watching(store, ephemeral=True)
    wf, pods, events = run_doc(store, doc, executor)
    assert wf.phase == "Succeeded", wf.message
    assert len(executor.seen) == len(pods) == len(doc["spec"]["templates"][0]["dag"]["tasks"])
    # launched before the commit that records them: no row, or still Pending
    assert set(executor.seen.values()) <= {None, "Pending"}, executor.seen
    assert all(p.phase == "Succeeded" for p in pods)
    journaled(pods, events)


def journaled(pods, events) -> None:
    """Every pod's start and end in the journal, each end once."""
    running = {e.node_id for e in events if e.to_phase == "Running"}
    done = [e.node_id for e in events if e.to_phase == "Succeeded" and e.node_id]
    assert {p.node_id for p in pods} <= running  # every launch journaled
    assert sorted(done) == sorted(set(done)) and set(done) >= {p.node_id for p in pods}


def test_other_steps_launch_only_once_committed_running(store):
    executor = Watching(store, ephemeral=False)
    wf, _, _ = run_doc(store, chain(10), executor)
    assert wf.phase == "Succeeded", wf.message
    assert len(executor.seen) == 10 and set(executor.seen.values()) == {"Running"}


def test_no_early_launch_when_the_lease_is_close_to_its_end(store):
    # every commit extends the lease by lease_ttl; a clock that jumps 2/3 of it between
    # turns always finds the lease with less than a third of its time left
    ttl, t = 30.0, [time.time()]

    def clock():
        t[0] += 21.0
        return t[0]

    executor = Watching(store, ephemeral=True)
    wf, _, _ = run_doc(store, chain(5), executor, lease_ttl=ttl, clock=clock)
    assert wf.phase == "Succeeded", wf.message
    assert set(executor.seen.values()) == {"Running"}, executor.seen


def steal_at_t3(store, executor: Watching) -> list:
    """Have another controller claim the run as its 4th step (t3) launches; the step
    directories of the launches it claimed at (filled as it happens)."""
    stolen = []

    def steal(spec):
        if len(executor.seen) == 3:
            with store.write() as s:
                q.update_workflow(s, spec.workflow_uid, lease_owner="thief",
                                  lease_expires_at=time.time() + 60)
            stolen.append(spec.step_dir)

    executor.before_launch = steal
    return stolen


def drive(ctl: Controller, uid: str) -> None:
    """Turn ``ctl`` until it no longer drives run ``uid`` (30 s at most)."""
    ctl.adopt(uid)
    end = time.monotonic() + 30
    while uid in ctl.runs and time.monotonic() < end:
        if not ctl.turn():
            ctl.wait_idle()


def test_an_early_launch_whose_run_was_taken_over_is_cancelled(store):
    executor = Watching(store, ephemeral=True)
    stolen = steal_at_t3(store, executor)
    row = submit(store, load_resource(chain(6)))
    ctl = Controller(store, load_settings(), executor, owner="me")
    ctl.hold_seconds = 0  # each turn committed at once (held turns: test_engine_holds)
    try:
        drive(ctl, row.uid)
    finally:
        executor.close()
    assert stolen, "t3 never launched"
    assert row.uid not in ctl.runs  # dropped at the commit that found the lease gone
    assert [d for d, _ in executor.cancelled] == [str(stolen[0])]
    with store.read() as s:
        wf = q.get_workflow(s, row.uid)
        names = {n.node_id: n.display_name for n in q.nodes_of(s, row.uid)}
    assert wf.lease_owner == "thief"
    assert "t3" not in names.values()  # its launch was never recorded (nor t4, t5)
    assert ctl.running == 0

