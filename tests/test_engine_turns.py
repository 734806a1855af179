"""The controller's turns, commits and waits per step, on an executor that reports ends
(ReportingFakeExecutor: each attempt takes a few ms on a thread, its end pushed as the
real executors push theirs).

A chain is the controller's worst case: one step ends, the next launches, and every turn
handles one step. It must cost one turn, one commit and one wait per step: no empty turn
after a launch and no coalescing delay while nothing else runs. A saturated controller
gathers ends before a turn only for a fraction of an attempt's usual run time."""

from __future__ import annotations

import pytest

from chute.config import load_settings
from chute.engine import controller as controller_module
from chute.engine.controller import Controller
from chute.engine.fake import ReportingFakeExecutor
from chute.engine.submit import submit
from chute.spec.loader import load_resource
from chute.store import queries as q
from chute.store.db import open_store

NOOP = {"name": "noop", "container": {"image": "busybox", "command": ["true"]}}


def _workflow(name: str, tasks: list[dict]) -> dict:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": name},
            "spec": {"entrypoint": "main",
                     "templates": [{"name": "main", "dag": {"tasks": tasks}}, NOOP]}}


def chain(n: int) -> dict:
    return _workflow("turns-chain", [
        {"name": f"t{i}", "template": "noop", **({"dependencies": [f"t{i - 1}"]} if i else {})}
        for i in range(n)])


def fanout(n: int) -> dict:
    return _workflow("turns-fanout", [{"name": "root", "template": "noop"}] + [
        {"name": f"t{i}", "template": "noop", "dependencies": ["root"]} for i in range(n)])


@pytest.fixture
def store(chute_home):
    s = open_store(load_settings().ensure())
    yield s
    s.dispose()


def _drive(store, doc: dict, executor, monkeypatch, **kw):
    """Run ``doc`` to its end; (controller, turns, commits that wrote something)."""
    settings = load_settings()
    row = submit(store, load_resource(doc))
    ctl = Controller(store, settings, executor, **kw)
    counts = {"turns": 0, "commits": 0}
    turn, commit = ctl.turn, controller_module.commit_decisions

    def counted_turn():
        counts["turns"] += 1
        return turn()

    def counted_commit(*args, **kwargs):
        counts["commits"] += 1
        return commit(*args, **kwargs)

    ctl.turn = counted_turn
    monkeypatch.setattr(controller_module, "commit_decisions", counted_commit)
    try:
        ctl.run_until_done([row.uid], timeout=120)
    finally:
        ctl.close()
    with store.read() as s:
        wf = q.get_workflow(s, row.uid)
        pods = [n for n in q.nodes_of(s, row.uid) if n.type == "Pod"]
    assert wf.phase == "Succeeded", wf.message
    return ctl, counts, pods


def test_a_chain_costs_one_turn_one_commit_and_one_wait_per_step(store, monkeypatch):
    n = 40
    executor = ReportingFakeExecutor(seconds=0.002)
    try:
        ctl, counts, pods = _drive(store, chain(n), executor, monkeypatch)
    finally:
        executor.close()
    assert len(pods) == n and all(p.phase == "Succeeded" for p in pods)
    # the adoption's commit launches t0; then each step's end and the next launch are
    # one turn and one commit (the last step's end completes the workflow)
    assert counts["commits"] == n + 1, counts
    # a turn per step, and rarely one more (a wake-up with nothing reported yet); a
    # turn after each launch, to find nothing, made this 2 per step
    assert counts["turns"] <= n + 3, counts
    assert n - 3 <= executor.waits <= n + 3, executor.waits


def test_short_attempts_are_not_held_back_to_gather_their_ends(store, monkeypatch):
    executor = ReportingFakeExecutor(seconds=0.0005)
    try:
        ctl, counts, pods = _drive(store, fanout(64), executor, monkeypatch, max_running=8)
    finally:
        executor.close()
    assert len(pods) == 65
    # attempts of ~0.5 ms: gathering ends for 5 ms (the configured coalesce) would
    # leave the 8 slots idle most of the time. Their time is measured from launch to
    # seen ended (~1 ms; tens of ms on a machine loaded enough to slow the controller)
    took = ctl.attempt_seconds
    assert took is not None and took < 0.1
    assert ctl.coalesce_seconds() == pytest.approx(min(ctl.coalesce, took / 4))
    ctl.attempt_seconds = 0.002  # attempts of 2 ms: ends gathered for 0.5 ms, not 5
    assert ctl.coalesce_seconds() == pytest.approx(0.0005) and ctl.coalesce == 0.005


def test_long_attempts_are_gathered_for_the_configured_coalesce(store, monkeypatch):
    executor = ReportingFakeExecutor(seconds=0.03)
    try:
        ctl, counts, pods = _drive(store, fanout(12), executor, monkeypatch, max_running=4)
    finally:
        executor.close()
    assert ctl.attempt_seconds is not None and ctl.attempt_seconds >= 0.03
    assert ctl.coalesce_seconds() == ctl.coalesce == 0.005
    # saturated (12 tasks, 4 slots): the 4 attempts of a wave end together and are
    # gathered after the first end into one turn: one commit a wave (the adoption's,
    # the root's end, 3 waves), not one per attempt (13); a loaded machine spreads a
    # wave's ends beyond the 5 ms now and then (8 seen at load 10)
    assert counts["commits"] <= 9, counts
