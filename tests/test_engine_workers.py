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

    import psutil

    stack = Stack(tmp_path / "home", workers=2).start()
    names = [f"kw-{i}" for i in range(12)]
    try:
        children = lambda: [p for p in psutil.Process(stack.ctl.pid).children()  # noqa: E731
                            if "--worker-of" in p.cmdline()]
        killed: list[int] = []

        def kill_one():
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if any(v == "Running" for v in stack.phases(names).values()):
                    victim = children()[0]
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
        assert killed[0] not in [p.pid for p in children()]
        assert len(children()) == 2  # the parent replaced the dead worker
    finally:
        logs = stack.stop()
    assert f"controller worker {killed[0]} exited" in logs
