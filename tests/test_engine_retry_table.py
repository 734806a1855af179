"""R-7: the retry semantics table.

Every combination of ``retryPolicy`` (Always, OnFailure, OnError, OnTransientError, or
none) x ``limit`` (0, 1, 3) x ``expression`` (none, true, false, true only after a
failure with exit code 1) x every sequence of attempt outcomes (fail, error, transient
error, success) long enough to use up the limit, run through the pure state machine, must
give exactly the attempt count and final phase of a reference model written from Argo's
documentation (``docs/retries.md``, ``docs/fields.md``, ``operator.go``): ``limit`` counts
retries (at most limit+1 attempts), policy and expression are re-evaluated after each
attempt, a success ends the retries. ``chute retry`` of the failed workflow never re-runs a
succeeded attempt. A few real runs check that the engine's process path agrees.
"""

from __future__ import annotations

import itertools
import json

import pytest
import yaml

from chute.engine import phases as P
from chute.engine.control import rerun_rows
from chute.engine.nodes import Node
from chute.engine.plan import build_plan
from chute.engine.pod import PodOutcome
from chute.engine.state import RunState
from tests.fixtures import cli

run = cli.run  # the in-process `chute` fixture

OUTCOMES = {
    "fail": PodOutcome(P.FAILED, 1, "Error (exit code 1)"),
    "error": PodOutcome(P.ERROR, None, "launch failed: no such file"),
    "transient": PodOutcome(P.ERROR, None, "supervisor lost: connection reset by peer"),
    "success": PodOutcome(P.SUCCEEDED, 0),
}
EXPRESSIONS = {  # name -> (expression, what the reference model makes of an attempt)
    "none": (None, lambda o: True),
    "true": ("lastRetry.status != 'Nope'", lambda o: True),
    "false": ("lastRetry.status == 'Nope'", lambda o: False),
    "exit1": ("lastRetry.exitCode == '1'", lambda o: o == "fail"),
}
POLICIES = [None, "Always", "OnFailure", "OnError", "OnTransientError"]


def reference(policy: str | None, expression: str, limit: int,
              outcomes: tuple[str, ...]) -> tuple[int, str]:
    """Argo's rules: (attempts made, final phase of the retry node)."""
    if policy is None:  # the default: Always when an expression decides (Argo >= 3.5)
        policy = "OnFailure" if expression == "none" else "Always"
    for i, name in enumerate(outcomes):
        phase = OUTCOMES[name].phase
        if phase == P.SUCCEEDED or i >= limit:
            return i + 1, phase
        retry = {"Always": True, "OnFailure": phase == P.FAILED, "OnError": phase == P.ERROR,
                 "OnTransientError": name == "transient"}[policy]
        if not (retry and EXPRESSIONS[expression][1](name)):
            return i + 1, phase
    raise AssertionError("outcome sequence shorter than the limit allows")


def _doc(policy: str | None, expression: str, limit: int) -> dict:
    strategy: dict = {"limit": limit}
    if policy:
        strategy["retryPolicy"] = policy
    if EXPRESSIONS[expression][0]:
        strategy["expression"] = EXPRESSIONS[expression][0]
    spec = yaml.safe_load("""
entrypoint: main
templates:
- name: main
  steps: [[{name: ok, template: once}, {name: r, template: flaky}]]
- name: once
  container: {image: busybox, command: [echo, once]}
- name: flaky
  container: {image: busybox, command: [echo, flaky]}
""")
    spec["templates"][2]["retryStrategy"] = strategy
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": "wf"}, "spec": spec}


def _run(plan, outcomes, recorded=None):
    """Drive the run, answering attempts of ``r`` from ``outcomes`` in order (and ``ok``
    with success); (attempts of r launched, pods launched, the state)."""
    st = RunState(plan, now=0.0, recorded=recorded)
    st.start()
    now, tries, launched = 0.0, 0, []
    while not st.done:
        d = st.drain()
        if not d.launches:
            nt = st.next_timer()
            assert nt is not None, "stuck: nothing running and no timer"
            now = nt
            st.tick(now)
            continue
        for req in d.launches:
            node = st.nodes[req.node_id]
            launched.append(node.display_name)
            now += 1
            st.mark_running(req.node_id, f"/s/{req.node_id}", now)
            if node.display_name.startswith("r("):
                outcome = OUTCOMES[outcomes[tries]]
                tries += 1
            else:
                outcome = OUTCOMES["success"]
            st.pod_finished(req.node_id, outcome, now + 0.5)
    return tries, launched, st


@pytest.mark.parametrize("limit", [0, 1, 3])
@pytest.mark.parametrize("expression", sorted(EXPRESSIONS))
@pytest.mark.parametrize("policy", POLICIES)
def test_attempts_match_the_reference_model(policy, expression, limit):
    plan = build_plan(_doc(policy, expression, limit), uid="u", created_at=0.0)
    checked = 0
    for outcomes in itertools.product(sorted(OUTCOMES), repeat=limit + 1):
        want_attempts, want_phase = reference(policy, expression, limit, outcomes)
        tries, launched, st = _run(plan, outcomes)
        r = next(n for n in st.nodes.values() if n.display_name == "r")
        case = (policy, expression, limit, outcomes)
        assert (tries, r.phase) == (want_attempts, want_phase), case
        assert tries <= limit + 1, case
        assert launched.count("ok") == 1, case
        kids = sorted(st.nodes[c].display_name for c in r.children)
        assert kids == [f"r({i})" for i in range(tries)], case
        if r.phase != P.SUCCEEDED:  # chute retry: the succeeded sibling is not re-run
            assert st.phase in (P.WF_FAILED, P.WF_ERROR), case
            rows = [n.to_row() for n in st.nodes.values()]
            again = rerun_rows(rows)
            assert "ok" not in {d["display_name"] for d in again}, case
            byid = {d["node_id"]: d for d in rows} | {d["node_id"]: d for d in again}
            recorded = {nid: Node.from_row(d) for nid, d in byid.items()}
            _, relaunched, st2 = _run(plan, ("success",) * (limit + 1), recorded)
            assert "ok" not in relaunched and st2.phase == P.WF_SUCCEEDED, case
        checked += 1
    assert checked == 4 ** (limit + 1)


def test_a_succeeded_attempt_ends_the_retries_and_is_never_rerun():
    """Success on attempt 2 of 4 allowed: no third attempt; after a restart (replay) the
    succeeded attempt is taken from the record, not launched again."""
    plan = build_plan(_doc("Always", "none", 3), uid="u", created_at=0.0)
    tries, _, st = _run(plan, ("fail", "success", "fail", "fail"))
    assert tries == 2 and st.phase == P.WF_SUCCEEDED
    recorded = {n.id: Node.from_row(n.to_row()) for n in st.nodes.values()}
    _, relaunched, st2 = _run(plan, (), recorded)
    assert relaunched == [] and st2.phase == P.WF_SUCCEEDED


REAL = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: {name}}}
spec:
  entrypoint: flaky
  templates:
  - name: flaky
    retryStrategy: {strategy}
    container:
      image: busybox
      command: [sh, -c, "echo x >> {count}; n=$(wc -l < {count}); test $n -ge {succeed_at} || exit {code}"]
"""


@pytest.mark.parametrize("strategy,code,succeed_at,attempts,phase", [
    ("{limit: 3}", 1, 3, 3, "Succeeded"),                              # OnFailure default
    ("{limit: 1}", 1, 3, 2, "Failed"),                                 # limit = retries
    ("{limit: 3, retryPolicy: OnError}", 1, 3, 1, "Failed"),           # a failure: no retry
    ("{limit: 3, expression: 'lastRetry.exitCode == \"2\"'}", 2, 3, 3, "Succeeded"),
    ("{limit: 3, expression: 'lastRetry.exitCode == \"2\"'}", 1, 3, 1, "Failed"),
])
def test_real_runs_agree(run, tmp_path, strategy, code, succeed_at, attempts, phase):
    count = tmp_path / "count"
    spec = tmp_path / "wf.yaml"
    spec.write_text(REAL.format(name="flaky", strategy=strategy, count=count,
                                succeed_at=succeed_at, code=code))
    rc, out, err = run("submit", str(spec), "--wait", "-o", "json")
    assert (rc == 0) == (phase == "Succeeded"), err
    assert len(count.read_text().split()) == attempts
    status = json.loads(out[out.index("{"):])["status"]
    assert status["phase"] == phase
    kids = [n for n in status["nodes"].values() if n["displayName"].startswith("flaky(")]
    assert len(kids) == attempts
