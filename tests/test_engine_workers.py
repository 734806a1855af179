"""D-2: runs submitted in parallel through the real API server, driven by
``chute controller --workers 2`` on PostgreSQL (SQLite: the killed-worker test).

Pass: the expected (run, step) set exactly; every step launched once (the store's
unique (run, step, attempt) on ``step_executions`` would have failed a second launch's
commit, and no attempt > 0 exists); both workers drove runs; no deadlock, "database is
locked" or traceback in any log; every run terminal. R-4 still holds: a second
``chute controller`` is refused while the workers' parent holds the lease.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.fixtures.engine_stack import Stack
from tests.fixtures.postgres import postgres_server, postgres_url  # noqa: F401


def live_workers(parent: int) -> list:
    """The live ``--worker-of`` children of ``parent``. Other children come and go (a
    killed worker is a zombie until reaped; an import runs ``file`` at start-up): a
    child that is gone or a zombie by the time it is read is not one."""
    import psutil

    live = []
    for p in psutil.Process(parent).children():
        try:
            if p.status() != psutil.STATUS_ZOMBIE and "--worker-of" in p.cmdline():
                live.append(p)
        except psutil.Error:
            continue
    return live


def run_d2(tmp_path, runs: int, steps: int, workers: int, db_url: str | None,
           timeout: float) -> dict:
    """D-2 with ``workers`` controller workers; its figures."""
    stack = Stack(tmp_path / "home", db_url, workers=workers)
    names = [f"d2-{i}" for i in range(runs)]
    try:
        stack.start()
        second = subprocess.run([sys.executable, "-m", "chute.cli.app", "controller"],
                                env=stack.env, cwd=REPO, capture_output=True, text=True,
                                timeout=60)
        assert second.returncode == 1 and "lease held" in second.stderr, second
        elapsed = stack.submit_and_wait(names, steps, timeout)
        owners = stack.check(names, steps)
        assert len(owners) == workers, owners  # the workers shared the runs
    finally:
        stack.stop()
    figures = {"runs": runs, "steps": steps, "workers": workers,
               "seconds": round(elapsed, 1), "runs_per_s": round(runs / elapsed, 2)}
    print("D-2", figures)
    return figures


@pytest.mark.postgres
def test_d2_hundred_runs_two_workers_on_postgres(tmp_path, postgres_url):  # noqa: F811
    run_d2(tmp_path, runs=100, steps=10, workers=2, db_url=postgres_url, timeout=300)


@pytest.mark.heavy
@pytest.mark.postgres
def test_d2_five_hundred_runs_four_workers_on_postgres(tmp_path, postgres_url):  # noqa: F811
    run_d2(tmp_path, runs=500, steps=20, workers=4, db_url=postgres_url, timeout=1200)


def test_a_worker_refuses_without_its_parent_holding_the_lease(tmp_path):
    stack = Stack(tmp_path / "home")
    res = subprocess.run([sys.executable, "-m", "chute.cli.app", "controller", "--worker-of",
                          "nobody"], env=stack.env, cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    stack.store.dispose()
    assert res.returncode == 1
    assert "does not hold the controller lease" in res.stderr


def test_a_killed_worker_is_replaced_and_its_runs_are_adopted(tmp_path):
    """SIGKILL one of two workers while runs are in flight: the parent starts another,
    the dead worker's runs are adopted once their leases expire, and all succeed with
    every step recorded once."""
    import os
    import signal
    import threading
    import time

    stack = Stack(tmp_path / "home", workers=2).start()
    names = [f"kw-{i}" for i in range(12)]
    try:
        killed: list[int] = []

        def kill_one():
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if any(v == "Running" for v in stack.phases(names).values()):
                    victim = live_workers(stack.ctl.pid)[0]
                    os.kill(victim.pid, signal.SIGKILL)
                    killed.append(victim.pid)
                    return
                time.sleep(0.05)

        killer = threading.Thread(target=kill_one)
        killer.start()
        stack.submit_and_wait(names, steps=6, timeout=120)
        killer.join()
        assert killed, "no run was seen Running"
        stack.check(names, steps=6, relaunched_ok=True)
        # the parent replaces the dead worker within its restart delay (1 s), which the
        # runs may beat: wait for it
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (
                killed[0] in (pids := [p.pid for p in live_workers(stack.ctl.pid)])
                or len(pids) != 2):
            time.sleep(0.1)
        assert killed[0] not in pids
        assert len(pids) == 2  # the parent replaced the dead worker
    finally:
        logs = stack.stop()
    assert f"controller worker {killed[0]} exited" in logs


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    """A fresh store: the SQLite file of a new home, or a new PostgreSQL database."""
    from chute.config import load_settings
    from chute.store.db import open_store

    env = {"CHUTE_HOME": str(tmp_path / "home")}
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
        env["CHUTE_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    s = open_store(load_settings(env).ensure())
    yield s
    s.dispose()


def _pending(store, n: int) -> list[str]:
    import time

    from chute.store import queries as q
    from chute.store.models import WorkflowRow

    uids = [f"uid-{i}" for i in range(n)]
    with store.write() as s:
        for i, uid in enumerate(uids):
            q.create_workflow(s, WorkflowRow(uid=uid, name=f"wf-{i}", spec={}, arguments={},
                                             phase="Pending", created_at=time.time() + i,
                                             suspended=False, labels={}, outputs={}))
    return uids


def test_a_second_launch_of_the_same_attempt_cannot_commit(store):
    import time

    from sqlalchemy.exc import IntegrityError

    from chute.store import leases

    uid = _pending(store, 1)[0]
    with store.write_conn() as conn:
        leases.record_launches(conn, "worker-a", [(uid, "n1", 0)], time.time())
    with pytest.raises(IntegrityError), store.write_conn() as conn:
        leases.record_launches(conn, "worker-b", [(uid, "n2", 0), (uid, "n1", 0)], time.time())
    with store.write_conn() as conn:  # the next attempt is a new launch
        leases.record_launches(conn, "worker-b", [(uid, "n1", 1)], time.time())
    from sqlalchemy import select

    from chute.store.models import StepExecutionRow

    with store.read() as s:  # the refused transaction left nothing (not even n2)
        rows = s.execute(select(StepExecutionRow.node_id, StepExecutionRow.attempt,
                                StepExecutionRow.owner)
                         .order_by(StepExecutionRow.pk)).all()
    assert [tuple(r) for r in rows] == [("n1", 0, "worker-a"), ("n1", 1, "worker-b")]


def test_claims_skip_what_another_worker_is_claiming(store):
    """While one worker's claim transaction is open, another claims the next workflows
    at once (PostgreSQL: SKIP LOCKED; SQLite: it waits for the lock, then takes the rest);
    no workflow is claimed twice."""
    import threading
    import time

    from chute.store import leases
    from chute.store import queries as q

    uids = _pending(store, 4)
    got: dict[str, list[str]] = {}
    with store.write() as s:
        got["a"] = leases.claim_workflows(s, "worker-a", time.time(), 15, limit=2)
        t = threading.Thread(target=lambda: got.__setitem__("b", _claim(store, "worker-b")))
        t0 = time.monotonic()
        t.start()
        t.join(timeout=3 if not store.is_sqlite else 0.5)
        waited = t.is_alive()
    t.join(timeout=30)
    assert got["a"] == uids[:2]
    assert got["b"] == uids[2:]
    if store.is_sqlite:
        assert waited  # BEGIN IMMEDIATE: the second writer queued behind the first
    else:
        assert not waited and time.monotonic() - t0 < 3  # skipped the locked rows
    with store.read() as s:
        owners = {r.uid: r.lease_owner for r in q.list_workflows(s)}
    assert owners == {uids[0]: "worker-a", uids[1]: "worker-a",
                      uids[2]: "worker-b", uids[3]: "worker-b"}


def _claim(store, owner: str) -> list[str]:
    import time

    from chute.store import leases

    with store.write() as s:
        return leases.claim_workflows(s, owner, time.time(), 15, limit=8)


def test_workers_stop_when_their_parent_dies(tmp_path):
    """SIGKILL the parent of two workers: the workers notice and exit (they would
    otherwise drive runs with nobody holding the controller lease)."""
    import os
    import signal
    import subprocess
    import time

    import psutil

    stack = Stack(tmp_path / "home", workers=2)
    stack.env["CHUTE_LEASE_TTL"] = "60"
    workers: list = []
    with open(stack.ctl_log, "w") as log:
        parent = subprocess.Popen([sys.executable, "-m", "chute.cli.app", "controller",
                                   "--workers", "2"], env=stack.env, cwd=REPO, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while len(workers := live_workers(parent.pid)) < 2:
            assert time.monotonic() < deadline, stack.ctl_log.read_text()
            time.sleep(0.1)
        os.kill(parent.pid, signal.SIGKILL)
        t0 = time.monotonic()
        parent.wait()
        _, alive = psutil.wait_procs(workers, timeout=30)
        assert alive == [], stack.ctl_log.read_text()
        assert time.monotonic() - t0 < 20  # not the lease running out (60 s here)
        print(f"workers gone {time.monotonic() - t0:.1f} s after their parent")
    finally:
        if parent.poll() is None:
            parent.kill()
        for p in workers:
            if p.is_running():
                p.kill()
        stack.store.dispose()
