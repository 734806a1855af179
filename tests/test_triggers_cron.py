"""CronWorkflows (RELIABILITY D-3): a slot ticked 5x at once makes exactly one run; after a
3-slot downtime the scheduler runs exactly the configured catch-up count (Argo's rule by
default); concurrencyPolicy Forbid/Replace; suspend; a restart neither repeats nor skips a
slot. With an injected clock, on a real SQLite file, and the D-3 checks (concurrent
ticks, catch-up, restart) also on the real PostgreSQL fixture."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from chute.errors import ConflictError, NotFoundError, SpecError, UserError
from chute.spec.loader import load_documents
from chute.store import queries as q
from tests.fixtures.postgres import postgres_server, postgres_url  # noqa: F401

T0 = 1_790_000_040.0  # a whole minute (…:00 UTC)
MIN = 60.0


def cron_doc(name: str = "nightly", *, schedule: str = "* * * * *", extra: str = "",
             annotations: str = "") -> str:
    return f"""\
apiVersion: argoproj.io/v1alpha1
kind: CronWorkflow
metadata:
  name: {name}
{annotations}spec:
  schedule: "{schedule}"
  timezone: UTC
{extra}  workflowMetadata: {{labels: {{team: ml}}}}
  workflowSpec:
    entrypoint: main
    arguments: {{parameters: [{{name: msg, value: hi}}]}}
    templates:
    - name: main
      container: {{image: busybox, command: [echo, "{{{{workflow.parameters.msg}}}}"]}}
"""


def catch_up(n: int) -> str:
    return f'  annotations: {{chute.dev/catch-up: "{n}"}}\n'


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request, tmp_path):
    """Settings of a fresh store: a SQLite file in a new home, or a PostgreSQL database."""
    from chute.config import load_settings

    env = {"CHUTE_HOME": str(tmp_path / "home")}
    if request.param == "postgres":
        env["CHUTE_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    return load_settings(env).ensure()


@pytest.fixture
def store(settings):
    from chute.store.db import open_store

    st = open_store(settings)
    yield st
    st.dispose()


class Clock:
    """An injected clock the test moves by hand."""

    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


def make(store, text: str, now: float = T0 - 30):
    from chute.triggers import crons

    return crons.create(store, load_documents(text)[0], now=now)


def runs(store) -> list:
    with store.read() as s:
        return sorted(q.list_workflows(s), key=lambda r: r.name)


def scheduler(store, clock):
    from chute.triggers.cron import CronScheduler

    return CronScheduler(store, clock=clock)


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_a_slot_runs_once_named_labelled_and_annotated_as_argo(store):
    cron = make(store, cron_doc())
    clock = Clock(T0 + 1)
    sched = scheduler(store, clock)
    made = sched.tick()
    assert [(d.workflow, d.created) for d in made] == [(f"nightly-{int(T0)}", True)]
    assert sched.tick() == []  # the same instant again: nothing due
    (run,) = runs(store)
    assert run.name == f"nightly-{int(T0)}" and run.phase == "Pending"
    assert run.labels == {"workflows.argoproj.io/cron-workflow": "nightly", "team": "ml"}
    meta = run.spec["metadata"]
    assert meta["annotations"]["workflows.argoproj.io/scheduled-time"] == "2026-09-21T14:14:00Z"
    assert run.idempotency_key == f"cron:{cron.uid}:2026-09-21T14:14:00Z"
    assert run.spec["spec"]["entrypoint"] == "main"
    clock.t = T0 + MIN + 0.5
    assert [d.workflow for d in sched.tick()] == [f"nightly-{int(T0 + MIN)}"]
    assert len(runs(store)) == 2


def test_five_concurrent_ticks_of_one_slot_make_one_run(store, settings):
    """D-3: the same slot ticked by 5 schedulers at once (each with its own engine, as
    separate processes would be), twice over: exactly one run per slot."""
    from chute.store.db import open_store
    from chute.triggers.cron import CronScheduler

    make(store, cron_doc())
    engines = [open_store(settings) for _ in range(5)]
    try:
        for slot in (T0, T0 + MIN):
            clock = Clock(slot + 2)
            gate = threading.Barrier(5)

            def tick(st, clock=clock, gate=gate):
                gate.wait()
                return CronScheduler(st, clock=clock).tick()

            with ThreadPoolExecutor(5) as pool:
                results = list(pool.map(tick, engines))
            decided = [d for r in results for d in r]
            assert {d.workflow for d in decided} == {f"nightly-{int(slot)}"}
            assert sum(d.created for d in decided) == 1
        assert [r.name for r in runs(store)] == [f"nightly-{int(T0)}", f"nightly-{int(T0 + MIN)}"]
    finally:
        for e in engines:
            e.dispose()


CATCH_UP_CASES = [  # (annotation, spec lines, which of the missed slots 1, 2, 3 run)
    ("", "", []),  # Argo: no startingDeadlineSeconds, no missed slot runs
    ("", "  startingDeadlineSeconds: 60\n", [3]),  # Argo: the latest, within the deadline
    ("", "  startingDeadlineSeconds: 20\n", []),  # the latest is 45 s old: past it
    (catch_up(0), "  startingDeadlineSeconds: 60\n", []),
    (catch_up(1), "", [3]),
    (catch_up(3), "", [1, 2, 3]),
    (catch_up(5), "", [1, 2, 3]),  # only 3 were missed
    (catch_up(3), "  startingDeadlineSeconds: 120\n", [2, 3]),  # slot 1 is 165 s old
]


def test_catch_up_after_a_three_slot_downtime(store):
    """D-3: each case a CronWorkflow of its own, all in one store."""
    for i, (annotation, extra, _) in enumerate(CATCH_UP_CASES):
        make(store, cron_doc(f"c{i}", annotations=annotation, extra=extra))
    clock = Clock(T0 + 1)
    first = scheduler(store, clock).tick()
    assert len(first) == len(CATCH_UP_CASES) and all(d.created for d in first)  # slot 0
    # down for slots 1, 2, 3; a new scheduler starts 45 s after slot 3 (past the grace)
    clock.t = T0 + 3 * MIN + 45
    decided = scheduler(store, clock).tick()
    names = {r.name for r in runs(store)}
    for i, (_, _, expected) in enumerate(CATCH_UP_CASES):
        mine = [d for d in decided if d.cron == f"c{i}"]
        assert [d.slot for d in mine] == [T0 + k * MIN for k in (1, 2, 3)], i
        assert [T0 + k * MIN for k in expected] == [d.slot for d in mine if d.created], i
        assert all(d.skipped == "missed" for d in mine if not d.created), i
        assert {n for n in names if n.startswith(f"c{i}-")} == {
            f"c{i}-{int(T0 + k * MIN)}" for k in [0, *expected]}, i
    # later ticks never reconsider those slots; the next on-time slot runs
    clock.t = T0 + 4 * MIN + 1
    later = scheduler(store, clock).tick()
    assert {d.slot for d in later} == {T0 + 4 * MIN} and all(d.created for d in later)
    expected_total = sum(len(e) + 2 for _, _, e in CATCH_UP_CASES)
    assert len(runs(store)) == expected_total


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_a_month_of_downtime_costs_a_bounded_walk_and_runs_the_catch_up_count(store):
    import time

    make(store, cron_doc(annotations=catch_up(3)))
    make(store, cron_doc("every", schedule="@every 60s", annotations=catch_up(2)))
    base = T0 + 30 * 86400
    clock = Clock(base + 45)
    started = time.monotonic()
    decided = scheduler(store, clock).tick()
    assert time.monotonic() - started < 5
    made = sorted((d.cron, d.slot) for d in decided if d.created)
    # @every counts from the creation (T0 - 30): base + 30 is on time, 2 missed ones run
    assert made == [("every", base - 90), ("every", base - 30), ("every", base + 30),
                    *[("nightly", base - k * MIN) for k in (2, 1, 0)]]
    assert scheduler(store, clock).tick() == []


def test_a_restart_neither_repeats_nor_skips_a_slot(store):
    cron = make(store, cron_doc())
    clock = Clock(T0 + 1)
    scheduler(store, clock).tick()
    scheduler(store, clock).tick()  # a restarted scheduler at the same instant
    with store.read() as s:
        from chute.triggers import crons

        assert crons.get(s, "nightly").checked_through == T0
        assert crons.get(s, "nightly").last_scheduled_at == T0
    # a crash after the run was committed and before the slot was recorded: the replayed
    # slot finds its run (same key) instead of making a second one
    from chute.store.models_triggers import CronWorkflowRow

    with store.write() as s:
        s.get(CronWorkflowRow, cron.uid).checked_through = None
    clock.t = T0 + 5
    again = scheduler(store, clock).tick()
    assert [(d.workflow, d.created) for d in again] == [(f"nightly-{int(T0)}", False)]
    clock.t = T0 + MIN + 3
    assert [d.created for d in scheduler(store, clock).tick()] == [True]
    assert [r.name for r in runs(store)] == [f"nightly-{int(T0)}", f"nightly-{int(T0 + MIN)}"]


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_forbid_skips_while_a_run_is_active_and_replace_terminates_it(store):
    make(store, cron_doc("forbid", extra="  concurrencyPolicy: Forbid\n"))
    make(store, cron_doc("replace", extra="  concurrencyPolicy: Replace\n"))
    make(store, cron_doc("allow", extra="  concurrencyPolicy: Allow\n"))
    clock = Clock(T0 + 1)
    sched = scheduler(store, clock)
    assert sum(d.created for d in sched.tick()) == 3
    with store.write() as s:  # forbid's first run is Running, replace's still Pending
        q.update_workflow(s, q.get_workflow(s, f"forbid-{int(T0)}").uid, phase="Running")
    clock.t = T0 + MIN + 1
    by_cron = {d.cron: d for d in sched.tick()}
    assert by_cron["forbid"].skipped == "Forbid" and not by_cron["forbid"].created
    assert by_cron["replace"].created and by_cron["allow"].created
    with store.read() as s:
        first = q.get_workflow(s, f"replace-{int(T0)}")
        assert first.shutdown == "Terminate"
        assert q.get_workflow(s, f"allow-{int(T0)}").shutdown is None
    # once forbid's run has finished, its next slot runs
    with store.write() as s:
        q.update_workflow(s, q.get_workflow(s, f"forbid-{int(T0)}").uid, phase="Succeeded")
    clock.t = T0 + 2 * MIN + 1
    assert {d.cron: d.created for d in sched.tick()}["forbid"] is True
    names = {r.name for r in runs(store)}
    assert f"forbid-{int(T0 + MIN)}" not in names and f"forbid-{int(T0 + 2 * MIN)}" in names


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_suspend_skips_slots_and_resume_does_not_run_them_later(store):
    from chute.triggers import crons

    make(store, cron_doc())
    crons.set_suspended(store, "nightly", True)
    clock = Clock(T0 + 1)
    sched = scheduler(store, clock)
    assert [d.skipped for d in sched.tick()] == ["suspended"]
    crons.set_suspended(store, "nightly", False)
    assert sched.tick() == []
    clock.t = T0 + MIN + 1
    assert [d.created for d in sched.tick()] == [True]
    assert [r.name for r in runs(store)] == [f"nightly-{int(T0 + MIN)}"]


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_when_skips_slots_and_stop_strategy_ends_the_schedule(store):
    from chute.triggers import crons

    when = ("{{= cronworkflow.lastScheduledTime == nil || "
            "(now() - cronworkflow.lastScheduledTime).Seconds() > 150 }}")
    make(store, cron_doc("spaced", extra=f"  when: '{when}'\n"))
    make(store, cron_doc("until-fail", extra="  stopStrategy: {expression: "
                                             "'cronworkflow.failed >= 1'}\n"))
    clock = Clock(T0)
    sched = scheduler(store, clock)
    seen: dict[str, list] = {"spaced": [], "until-fail": []}
    for k in range(4):
        clock.t = T0 + k * MIN + 1
        for d in sched.tick():
            seen[d.cron].append("run" if d.created else d.skipped)
        if k == 0:  # until-fail's first run fails
            with store.write() as s:
                q.update_workflow(s, q.get_workflow(s, f"until-fail-{int(T0)}").uid,
                                  phase="Failed")
    assert seen["spaced"] == ["run", "when", "when", "run"]  # 60 and 120 s: too soon
    assert seen["until-fail"] == ["run", "stopped", "stopped", "stopped"]
    with store.read() as s:
        view = crons.view(s, crons.get(s, "until-fail"), now=clock.t)
    assert view["status"]["phase"] == "Stopped"
    assert view["metadata"]["labels"]["workflows.argoproj.io/cron-completed"] == "true"
    assert view["status"]["failed"] == 1


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_history_limits_delete_the_oldest_finished_runs(store):
    make(store, cron_doc(extra="  successfulJobsHistoryLimit: 1\n  failedJobsHistoryLimit: 0\n"))
    clock = Clock(T0)
    sched = scheduler(store, clock)
    for k, phase in enumerate(["Succeeded", "Succeeded", "Failed"]):
        clock.t = T0 + k * MIN + 1
        (d,) = sched.tick()
        with store.write() as s:
            q.update_workflow(s, q.get_workflow(s, d.workflow).uid, phase=phase,
                              finished_at=clock.t + 5)
    clock.t = T0 + 3 * MIN + 1
    sched.tick()
    assert [(r.name, r.phase) for r in runs(store)] == [
        (f"nightly-{int(T0 + MIN)}", "Succeeded"), (f"nightly-{int(T0 + 3 * MIN)}", "Pending")]


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_several_schedules_timezone_and_a_submission_error(store):

    text = cron_doc(schedule="0 9 * * *").replace(
        '  schedule: "0 9 * * *"\n  timezone: UTC\n',
        '  schedules: ["0 9 * * *", "30 9 * * *"]\n  timezone: Asia/Tokyo\n')
    make(store, text)
    day = 1_790_000_000.0 - 1_790_000_000.0 % 86400  # 00:00 UTC = 09:00 Tokyo
    clock = Clock(day + 1)
    with store.write() as s:
        from chute.store.models_triggers import CronWorkflowRow

        s.query(CronWorkflowRow).update({"created_at": day - 60})
    sched = scheduler(store, clock)
    assert [d.slot for d in sched.tick()] == [day]
    clock.t = day + 1800 + 1
    assert [d.slot for d in sched.tick()] == [day + 1800]


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_a_submission_error_is_recorded_and_the_next_slot_tries_again(store):
    from chute.engine.submit import store_template
    from chute.triggers import crons

    tmpl = load_documents("""\
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: tmpl}
spec:
  entrypoint: main
  templates:
  - name: main
    container: {image: busybox, command: [echo, hi]}
""")[0]
    store_template(store, tmpl)
    text = cron_doc().split("    entrypoint: main")[0] + "    workflowTemplateRef: {name: tmpl}\n"
    with pytest.raises(UserError, match="nope"):  # creation resolves the stored templates
        make(store, text.replace("name: tmpl}", "name: nope}"))
    make(store, text)
    with store.write() as s:
        q.delete_template(s, "WorkflowTemplate", "tmpl")
    clock = Clock(T0 + 1)
    sched = scheduler(store, clock)
    (d,) = sched.tick()
    assert d.skipped.startswith("error: ") and "tmpl" in d.skipped and d.workflow is None
    with store.read() as s:
        view = crons.view(s, crons.get(s, "nightly"), now=clock.t)
    assert "tmpl" in view["status"]["conditions"][0]["message"]
    assert runs(store) == []
    store_template(store, tmpl)
    clock.t = T0 + MIN + 1
    (d,) = sched.tick()
    assert d.created and runs(store)[0].spec["spec"]["workflowTemplateRef"] == {"name": "tmpl"}
    with store.read() as s:
        view = crons.view(s, crons.get(s, "nightly"), now=clock.t)
    assert "conditions" not in view["status"]
    assert view["status"]["active"][0]["name"] == f"nightly-{int(T0 + MIN)}"
    assert view["status"]["lastScheduledTime"] == "2026-09-21T14:15:00Z"
    assert view["status"]["nextScheduledTime"] == "2026-09-21T14:16:00Z"


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_update_keeps_progress_and_a_new_schedule_starts_from_now(store):
    from chute.triggers import crons

    first = make(store, cron_doc())
    clock = Clock(T0 + 1)
    scheduler(store, clock).tick()  # slot 0 runs
    # a new schedule (written differently) after slot 3: its slots before the update are
    # not missed ones, whatever the catch-up
    clock.t = T0 + 3 * MIN + 45
    text = cron_doc(schedule="*/1 * * * *", annotations=catch_up(5))
    row = crons.update(store, load_documents(text)[0], now=clock.t)
    assert row.uid == first.uid and row.last_scheduled_at == T0
    assert row.spec["metadata"]["annotations"]["chute.dev/catch-up"] == "5"
    assert scheduler(store, clock).tick() == []
    clock.t = T0 + 4 * MIN + 1
    assert [d.slot for d in scheduler(store, clock).tick() if d.created] == [T0 + 4 * MIN]
    # the same schedule, another policy: progress kept, the missed slot is caught up
    clock.t = T0 + 6 * MIN + 45
    crons.update(store, load_documents(text.replace("timezone: UTC", "timezone: UTC\n"
                                                    "  concurrencyPolicy: Allow"))[0],
                 now=clock.t)
    made = [d.slot for d in scheduler(store, clock).tick() if d.created]
    assert made == [T0 + 5 * MIN, T0 + 6 * MIN]
    with pytest.raises(NotFoundError, match="other"):
        crons.update(store, load_documents(cron_doc("other"))[0])


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_create_refuses_bad_input_by_place(store):
    from chute.triggers import crons

    with pytest.raises(SpecError, match="spec.schedule"):
        make(store, cron_doc(schedule="61 * * * *"))
    with pytest.raises(SpecError, match="chute.dev/catch-up"):
        make(store, cron_doc(annotations='  annotations: {chute.dev/catch-up: "x"}\n'))
    with pytest.raises(SpecError, match="spec.when"):
        make(store, cron_doc(extra='  when: "1 +"\n'))
    make(store, cron_doc())
    with pytest.raises(ConflictError, match="nightly"):
        make(store, cron_doc())
    with store.read() as s, pytest.raises(NotFoundError, match="nope"):
        crons.get(s, "nope")
    with pytest.raises(NotFoundError):
        crons.delete(store, "nope")
    crons.delete(store, "nightly")
    with store.read() as s:
        assert crons.list_all(s) == []


TICKER = """\
import json, sys, time
from chute.config import load_settings
from chute.store.db import open_store
from chute.triggers.cron import CronScheduler
env, slots, start = json.loads(sys.argv[1]), json.loads(sys.argv[2]), float(sys.argv[3])
store = open_store(load_settings(env))
out = []
for slot in slots:
    while time.time() < start:
        time.sleep(0.001)
    out += [d.created for d in CronScheduler(store, clock=lambda: slot + 2).tick()]
    start += 0.5
print(json.dumps(out))
"""


@pytest.mark.heavy
def test_heavy_ten_processes_tick_twenty_slots_together(settings, store):
    """D-3 at scale: 10 processes tick the same 20 slots at the same instants."""
    import json
    import os
    import subprocess
    import sys
    import time

    make(store, cron_doc())
    env = {"CHUTE_HOME": str(settings.home)}
    if not store.is_sqlite:
        env["CHUTE_DATABASE_URL"] = store.engine.url.render_as_string(hide_password=False)
    slots = [T0 + k * MIN for k in range(20)]
    start = time.time() + 8  # every process imported and connected by then
    procs = [subprocess.Popen([sys.executable, "-c", TICKER, json.dumps(env), json.dumps(slots),
                               str(start)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.getcwd()})
             for _ in range(10)]
    created = [json.loads(p.communicate(timeout=300)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(sum(c) for c in created) == 20
    assert [r.name for r in runs(store)] == [f"nightly-{int(s)}" for s in slots]
