"""R-2: kill the controller at every durable write boundary, restart, finish.

For each crash point in :data:`chute.engine.crashpoints.POINTS` (the registry, so a point
added later is covered without touching this file), a controller subprocess runs a small
workflow that reaches every point — a DAG with a fan-out over an output parameter, output
artifacts with metrics and a consumer of them (lineage), a retried step, two memoized steps
(a miss, then a hit), a suspend step resumed with a value, an exit handler — armed to
SIGKILL itself there. The test asserts the crash fired, starts an unarmed controller that
adopts the run once the lease expires, and checks: the run Succeeded, no node has two
success records in the journal, every step attempt left its side-effect marker (an O_EXCL
file ``<marks>/<step>/<attempt>``) exactly once, or at most twice when the crash landed
while it ran, and the artifact rows are not duplicated.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from chute.dsl import compile_pipeline, component, pipeline
from chute.engine.crashpoints import NUMBER, POINTS
from tests.conftest import REPO
from tests.fixtures.controllers import chute_env, chute_proc, open_store_of
from tests.fixtures.postgres import fresh_database, postgres_server  # noqa: F401

WORKFLOW = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: crash}
spec:
  entrypoint: main
  onExit: bye
  templates:
  - name: main
    dag:
      tasks:
      - {name: gen, template: gen}
      - {name: approve, template: approve}
      - name: fast-a
        template: fast
        dependencies: [use]
        arguments: {parameters: [{name: cmd, value: ". LIB; mark fast-a"}]}
      - name: fast-b
        template: fast
        dependencies: [fast-a]
        arguments: {parameters: [{name: cmd, value: ". LIB; mark fast-b"}]}
      - name: fan
        template: work
        dependencies: [gen]
        withParam: "{{tasks.gen.outputs.parameters.items}}"
        arguments: {parameters: [{name: step, value: "fan-{{item}}"}]}
      - {name: flaky, template: flaky, dependencies: [gen]}
      - {name: memo-a, template: memo, arguments: {parameters: [{name: step, value: memo-a}]}}
      - name: memo-b
        template: memo
        dependencies: [memo-a]
        arguments: {parameters: [{name: step, value: memo-b}]}
      - name: use
        template: use
        dependencies: [fan, flaky, memo-b, approve]
        arguments:
          parameters:
          - {name: choice, value: "{{tasks.approve.outputs.parameters.choice}}"}
          - {name: memo, value: "{{tasks.memo-b.outputs.parameters.v}}"}
          artifacts:
          - {name: data, from: "{{tasks.gen.outputs.artifacts.data}}"}
  - name: gen
    metadata:
      annotations: {chute.dev/artifact-types: '{"metrics": "system.Metrics"}'}
    container:
      image: busybox
      command: [sh, -c, ". LIB; mark gen; gen_files"]
    outputs:
      parameters: [{name: items, valueFrom: {path: /tmp/items}}]
      artifacts:
      - {name: data, path: /tmp/data, archive: {none: {}}}
      - {name: metrics, path: /tmp/metrics, archive: {none: {}}}
  - name: work
    inputs: {parameters: [{name: step}]}
    container: {image: busybox, command: [sh, -c, ". LIB; mark {{inputs.parameters.step}}"]}
  - name: flaky
    retryStrategy: {limit: 2}
    container:
      image: busybox
      command: [sh, -c, ". LIB; mark flaky {{retries}}; test {{retries}} -ge 1"]
  - name: memo
    inputs: {parameters: [{name: step}]}
    memoize: {key: "m-{{workflow.uid}}", maxAge: 1h, cache: {configMap: {name: crash}}}
    container:
      image: busybox
      command: [sh, -c, ". LIB; mark {{inputs.parameters.step}}; echo 42 > /tmp/v"]
    outputs: {parameters: [{name: v, valueFrom: {path: /tmp/v}}]}
  - name: approve
    suspend: {}
    outputs: {parameters: [{name: choice, valueFrom: {supplied: {}}}]}
  - name: use
    inputs:
      parameters: [{name: choice}, {name: memo}]
      artifacts: [{name: data, path: /tmp/in}]
    container:
      image: busybox
      command: [sh, -c, ". LIB; mark use; test {{inputs.parameters.choice}} = yes && test {{inputs.parameters.memo}} = 42 && grep -q payload /tmp/in"]
  - name: bye
    container: {image: busybox, command: [sh, -c, ". LIB; mark bye"]}
"""

# The steps' shell library. ``mark STEP [ATTEMPT]`` claims the side-effect marker
# $M/STEP/ATTEMPT with O_EXCL (noclobber); a second run of the same attempt appends
# to ATTEMPT.dup instead. It then sleeps a little and records the step's lifetime in
# STEP/spans, so the test knows whether the crash landed while the step ran.
LIB = """
mark() {
  d=$M/$1; a=${2:-0}; mkdir -p $d; t0=$(date +%s.%N)
  (set -C; echo $t0 > $d/$a) 2>/dev/null || echo $t0 >> $d/$a.dup
  sleep 0.2
  echo "$a $t0 $(date +%s.%N)" >> $d/spans
}
gen_files() {
  echo '[1,2,3]' > /tmp/items; echo payload > /tmp/data; echo '{"acc": 0.9}' > /tmp/metrics
}
"""

STEPS = {"gen": 1, "fan-1": 1, "fan-2": 1, "fan-3": 1, "flaky": 2, "memo-a": 1, "use": 1,
         "bye": 1, "fast-a": 1, "fast-b": 1}  # step -> attempts it makes (memo-b is a cache
# hit: it never runs)
# Steps run in a reused worker (the second one launched early, before its commit): such a
# step dies with its controller and its end is recorded only by the controller's commit,
# so a crash from its start to that commit runs it again (at-least-once): at most one
# re-run per crash, whenever the crash landed. They run last, alone: the turn in which
# fast-a ends and fast-b starts has nothing else in it, so it is held (flush.held)
REUSED = {"fast-a", "fast-b"}


@component(reuse_worker=True)
def fast(cmd: str) -> None:
    """A step in a reused worker: the shell steps' side-effect marker."""
    import subprocess

    subprocess.run(["sh", "-c", cmd], check=True)


@pipeline(name="crash-fast")
def _fast_pipeline():
    fast(cmd="")


FAST_TEMPLATE = next(t for t in compile_pipeline(_fast_pipeline)["spec"]["templates"]
                     if "script" in t)
LEASE_TTL = 1.0


def _spec(tmp: Path) -> Path:
    marks = tmp / "marks"
    marks.mkdir(parents=True)
    lib = tmp / "lib.sh"
    lib.write_text(LIB)
    # the marks directory is named in each step's argv: a step with private paths (its
    # own /tmp) sees host paths its argv names (chute.executors.sandbox)
    doc = yaml.safe_load(WORKFLOW.replace(". LIB;", f"M={marks}; . {lib};"))
    doc["spec"]["templates"].append({**FAST_TEMPLATE, "name": "fast"})
    path = tmp / "crash.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _resumer(env: dict[str, str], done: threading.Event) -> threading.Thread:
    """Answers the suspend step with choice=yes once it runs (a control request made
    while whichever controller is alive, or none, drives the run)."""
    from chute.engine import control
    from chute.errors import NotFoundError
    from chute.store import queries as q

    def loop() -> None:
        store, _ = open_store_of(env)
        try:
            while not done.is_set():
                try:
                    with store.read() as s:
                        row = q.get_workflow(s, "crash")
                        gate = [n for n in q.nodes_of(s, row.uid)
                                if n.display_name == "approve" and n.phase == "Running"]
                    if gate:
                        control.resume(store, "crash", {"choice": "yes"})
                        return
                except NotFoundError:
                    pass
                done.wait(0.1)
        finally:
            store.dispose()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


def _stop_when_done(proc, env: dict[str, str]) -> None:
    """SIGTERM a standalone controller once the workflow finished (if it did not crash)."""
    from chute.errors import NotFoundError
    from chute.store import queries as q

    def loop() -> None:
        store, _ = open_store_of(env)
        try:
            while proc.poll() is None:
                try:
                    with store.read() as s:
                        if q.get_workflow(s, "crash").phase in ("Succeeded", "Failed", "Error"):
                            proc.send_signal(signal.SIGTERM)
                            return
                except NotFoundError:
                    pass
                time.sleep(0.2)
        finally:
            store.dispose()

    threading.Thread(target=loop, daemon=True).start()


def crash_trial(tmp: Path, point: str, nth: int = 1, db_url: str | None = None) -> dict:
    """Crash a controller at the ``nth`` hit of ``point``, restart one, check the run.
    Returns what happened (whether it fired, timings); raises AssertionError on a
    violated property."""
    t0 = time.monotonic()
    spec = _spec(tmp)
    crash_file = tmp / "crashed"
    env = chute_env(tmp / "home", db_url, lease_ttl=LEASE_TTL)
    armed = dict(env, CHUTE_CRASH_AT=f"{point}:{nth}", CHUTE_CRASH_MARKER=str(crash_file))
    store, _ = open_store_of(env)  # migrated here, before the processes race to do it
    store.dispose()
    done = threading.Event()
    resumer = _resumer(env, done)
    if point.startswith("serve."):  # a standalone controller: submit, then it runs it
        submitted = chute_proc("submit", spec, env=env)
        assert submitted.wait(timeout=60) == 0, submitted.stderr.read()
        first = chute_proc("controller", env=armed)
        _stop_when_done(first, env)
    else:
        first = chute_proc("submit", spec, "--wait", env=armed)
    try:
        out, err = first.communicate(timeout=120)
        fired = crash_file.exists()
        if fired:
            assert first.returncode == -signal.SIGKILL, (point, first.returncode, err)
            number, name, hit = crash_file.read_text().split()[:3]
            assert (name, int(number), int(hit)) == (point, NUMBER[point], nth)
            second = chute_proc("wait", "crash", env=env)
            out2, err2 = second.communicate(timeout=120)
            assert second.returncode == 0 and "crash Succeeded" in out2, (point, out2, err2)
        else:  # the run ended before the nth hit: it must simply have succeeded
            assert first.returncode == 0, (point, out, err)  # (then _check: Succeeded)
    finally:
        done.set()
        if first.poll() is None:
            first.kill()
        resumer.join(timeout=10)
    crash_at = float(crash_file.read_text().split()[4]) if fired else None
    _check(env, tmp / "marks", crash_at, point)
    return {"point": point, "nth": nth, "fired": fired, "seconds": time.monotonic() - t0}


def _check(env: dict[str, str], marks: Path, crash_at: float | None, point: str) -> None:
    from chute.store import queries as q
    from chute.store.models import ArtifactRow, MetricRow

    store, _ = open_store_of(env)
    try:
        with store.read() as s:
            row = q.get_workflow(s, "crash")
            nodes = q.nodes_of(s, row.uid)
            events = q.events_of(s, row.uid)
            arts = [(a.node_id, a.name) for a in s.query(ArtifactRow)
                    .filter(ArtifactRow.workflow_uid == row.uid)]
            metrics = s.query(MetricRow).filter(MetricRow.workflow_uid == row.uid).count()
    finally:
        store.dispose()
    assert row.phase == "Succeeded", (point, row.message)
    assert not [n.display_name for n in nodes if n.phase in ("Pending", "Running")], point
    successes: dict[str, int] = {}
    for e in events:
        if e.to_phase == "Succeeded":
            successes[e.node_id or ""] = successes.get(e.node_id or "", 0) + 1
    assert all(c == 1 for c in successes.values()), (point, successes)
    assert {n.node_id for n in nodes if n.phase == "Succeeded"} <= set(successes), point
    assert sorted(arts) == sorted(set(arts)) and len(arts) == 2, (point, arts)
    assert metrics == 1, (point, metrics)
    memo_b = next(n for n in nodes if n.display_name == "memo-b")
    assert memo_b.cached, point
    for step, attempts in STEPS.items():
        d = marks / step
        spans = [line.split() for line in (d / "spans").read_text().splitlines()]
        for a in range(attempts):
            assert (d / str(a)).exists(), (point, step, a)
            dups = (d / f"{a}.dup").read_text().split() if (d / f"{a}.dup").exists() else []
            landed = crash_at is not None and any(
                s[0] == str(a) and float(s[1]) <= crash_at <= float(s[2]) for s in spans)
            assert len(dups) <= (1 if landed or step in REUSED else 0), (
                point, step, a, dups, landed)
        assert not (d / f"{attempts}").exists(), (point, step, "an attempt too many")
    assert not (marks / "memo-b").exists(), (point, "memo-b ran despite the cache")


def test_every_crash_point_call_names_a_registered_point():
    """Each ``crash_point("...")`` in the code names a point of the registry, and every
    registered point is called somewhere (so the loop below covers every boundary)."""
    called: dict[str, int] = {}
    for path in (REPO / "chute").rglob("*.py"):
        for name in re.findall(r"crash_point\(\s*[\"']([^\"']+)[\"']", path.read_text()):
            called[name] = called.get(name, 0) + 1
    unknown = set(called) - set(POINTS)
    assert not unknown, f"crash_point names missing from POINTS: {sorted(unknown)}"
    assert set(POINTS) <= set(called), f"never called: {sorted(set(POINTS) - set(called))}"
    assert all(n == 1 for n in called.values()), called  # a name marks one place


def test_a_disarmed_crash_point_does_nothing(monkeypatch):
    import chute.engine.crashpoints as cp

    monkeypatch.setattr(cp, "_ARMED", None)
    for name in POINTS:
        cp.crash_point(name)
    monkeypatch.setattr(cp, "_ARMED", ("flush.committed", 3))
    monkeypatch.setattr(cp, "_hits", 0)
    monkeypatch.setattr(cp, "_PID", -1)  # armed in another process (we are a fork): no-op
    cp.crash_point("flush.committed")
    assert cp._hits == 0


def _run_points(tmp_path: Path, trials: list[tuple[str, int]], workers: int,
                db: callable | None = None) -> list[dict]:
    def one(i_trial):
        i, (point, nth) = i_trial
        tmp = tmp_path / f"{i:02d}-{point}-{nth}"
        if db is None:
            return crash_trial(tmp, point, nth)
        with db() as url:
            return crash_trial(tmp, point, nth, url)

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, enumerate(trials)))


def test_crash_at_every_point_then_adopt_sqlite(tmp_path):
    """R-2 on SQLite: every crash point fires once (at its first hit) and the adopted run
    completes with no duplicate success and no re-run of a finished step."""
    t0 = time.monotonic()
    results = _run_points(tmp_path, [(p, 1) for p in POINTS], workers=3)
    not_fired = [r["point"] for r in results if not r["fired"]]
    assert not not_fired, f"crash points that never fired: {not_fired}"
    print(f"\nR-2 sqlite: {len(results)} points in {time.monotonic() - t0:.1f}s: "
          + ", ".join(f"{r['point']} {r['seconds']:.1f}s" for r in results))


# the boundaries where PostgreSQL's own behaviour matters (a commit not launched, a pod
# re-attached, a result's rows written twice); every point with CHUTE_HEAVY=1
PG_POINTS = ["flush.running_committed", "launch.spawned", "outputs.saved"]


@pytest.mark.postgres
def test_crash_at_points_then_adopt_postgres(tmp_path, postgres_server):  # noqa: F811
    """R-2 on PostgreSQL: the boundaries around a pod's launch and result."""
    points = list(POINTS) if os.environ.get("CHUTE_HEAVY") == "1" else PG_POINTS
    results = _run_points(tmp_path, [(p, 1) for p in points], workers=2,
                          db=lambda: fresh_database(postgres_server))
    assert not [r["point"] for r in results if not r["fired"]]
    print(f"\nR-2 postgres: {len(results)} points: "
          + ", ".join(f"{r['point']} {r['seconds']:.1f}s" for r in results))


@pytest.mark.heavy
def test_crash_at_every_hit_of_every_point(tmp_path):
    """Exhaustive R-2: for each point, crash at its 1st, 2nd, ... hit until a run ends
    without reaching that hit (``CHUTE_CRASH_HITS`` caps the hits per point)."""
    cap = int(os.environ.get("CHUTE_CRASH_HITS", "40"))
    t0 = time.monotonic()

    def every_hit(point: str) -> int:
        for nth in range(1, cap + 1):
            if not crash_trial(tmp_path / f"{point}-{nth}", point, nth)["fired"]:
                return nth
        return cap

    with ThreadPoolExecutor(3) as pool:
        trials = dict(zip(POINTS, pool.map(every_hit, POINTS), strict=True))
    print(f"\nR-2 exhaustive: {sum(trials.values())} trials in {time.monotonic() - t0:.1f}s: "
          f"{trials}")
