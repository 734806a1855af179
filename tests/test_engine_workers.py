"""D-2: runs submitted in parallel through the real API server, driven by
``chute controller --workers 2`` on PostgreSQL (and, smaller, on SQLite).

Pass: the expected (run, step) set exactly; every step launched once (the store's
unique (run, step, attempt) on ``step_executions`` would have failed a second launch's
commit, and no attempt > 0 exists); both workers drove runs; no deadlock, "database is
locked" or traceback in any log; every run terminal. R-4 still holds: a second
``chute controller`` is refused while the workers' parent holds the lease.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import REPO
from tests.fixtures.postgres import postgres_server, postgres_url  # noqa: F401
from tests.fixtures.server import free_port
from tests.test_server_cli import _start, _stop

TOKEN = "test-token-for-controller-workers-0123456789"
BAD_WORDS = ("deadlock detected", "database is locked", "Traceback", "IntegrityError")


def workflow(name: str, steps: int) -> dict:
    """A DAG of ``steps`` no-op steps, each depending on its binary-tree parent."""
    tasks = [{"name": f"t{i}", "template": "t", **({"dependencies": [f"t{(i - 1) // 2}"]}
                                                     if i else {})} for i in range(steps)]
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": name},
            "spec": {"entrypoint": "main", "templates": [
                {"name": "main", "dag": {"tasks": tasks}},
                {"name": "t", "container": {"image": "busybox", "command": ["true"]}}]}}


def _env(home, db_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUTE_")}
    env.update(CHUTE_HOME=str(home), CHUTE_TOKEN=TOKEN, CHUTE_LEASE_TTL="5")
    if db_url:
        env["CHUTE_DATABASE_URL"] = db_url
    return env


def run_d2(tmp_path, runs: int, steps: int, workers: int, db_url: str | None,
           timeout: float, prefix: str = "d2") -> dict:
    """Start the server (no embedded controller) and ``chute controller --workers``,
    submit ``runs`` workflows from 4 threads, wait for all, and check the store. Returns
    figures (seconds to all-terminal, runs per second, owners)."""
    from sqlalchemy import select

    from chute.config import load_settings
    from chute.store import queries as q
    from chute.store.db import open_store
    from chute.store.models import StepExecutionRow

    env = _env(tmp_path / "home", db_url)
    ctl_log = tmp_path / "controller.log"
    port = free_port()
    server, server_lines = _start(port, env, "--no-controller")
    with open(ctl_log, "w") as log:
        ctl = subprocess.Popen([sys.executable, "-m", "chute.cli.app", "controller",
                                "--workers", str(workers)], env=env, cwd=REPO,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    store = open_store(load_settings({k: v for k, v in env.items() if k.startswith("CHUTE_")}))
    names = [f"{prefix}-{i}" for i in range(runs)]
    try:
        deadline = time.monotonic() + 60
        while True:  # the parent takes the lease, then starts its workers
            with store.read() as s:
                if q.lease_holder(s, "controller", time.time()) is not None:
                    break
            assert ctl.poll() is None and time.monotonic() < deadline, ctl_log.read_text()
            time.sleep(0.1)
        second = subprocess.run([sys.executable, "-m", "chute.cli.app", "controller"],
                                env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
        assert second.returncode == 1 and "lease held" in second.stderr, second
        t0 = time.monotonic()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=60,
                          headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            def post(name: str) -> int:
                return http.post("/runs", json={"workflow": workflow(name, steps)}).status_code

            with ThreadPoolExecutor(4) as pool:
                codes = list(pool.map(post, names))
        assert codes == [201] * runs
        deadline = time.monotonic() + timeout
        while True:
            with store.read() as s:
                rows = q.list_workflows(s)
            active = [(r.name, r.phase) for r in rows if r.phase in ("Pending", "Running")]
            if len(rows) == runs and not active:
                break
            assert time.monotonic() < deadline, (len(rows), active[:5])
            time.sleep(0.25)
        elapsed = time.monotonic() - t0
        assert ctl.poll() is None, "the controller exited"
    finally:
        ctl.send_signal(signal.SIGTERM)
        try:
            ctl.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(ctl.pid, signal.SIGKILL)
            raise
        _stop(server)
    assert sorted(r.name for r in rows) == sorted(names)
    assert [r.name for r in rows if r.phase != "Succeeded"] == []
    want = {(name, f"t{i}") for name in names for i in range(steps)}
    got_pods, pod_ids = [], []
    with store.read() as s:
        for r in rows:
            pods = [n for n in q.nodes_of(s, r.uid) if n.type == "Pod"]
            got_pods += [(r.name, n.display_name) for n in pods]
            pod_ids += [(r.uid, n.node_id) for n in pods]
            assert all(n.phase == "Succeeded" and n.attempt == 0 for n in pods), r.name
        launches = list(s.scalars(select(StepExecutionRow)))
    by_uid = {r.uid: r.name for r in rows}
    # exactly the expected (run, step) set: none lost, none duplicated
    assert len(got_pods) == len(want) and set(got_pods) == want
    # every step launched exactly once, attempt 0, by some worker
    assert sorted((e.workflow_uid, e.node_id) for e in launches) == sorted(pod_ids)
    assert {e.attempt for e in launches} == {0}
    assert {by_uid[e.workflow_uid] for e in launches} == set(names)
    owners = {e.owner for e in launches}
    if workers > 1:
        assert len(owners) == workers, owners  # the workers shared the runs
    logs = ctl_log.read_text() + "\n".join(server_lines)
    for word in BAD_WORDS:
        assert word not in logs, logs[-3000:]
    store.dispose()
    figures = {"runs": runs, "steps": steps, "seconds": round(elapsed, 1),
               "runs_per_s": round(runs / elapsed, 2), "owners": len(owners)}
    print("D-2", figures)
    return figures


@pytest.mark.postgres
def test_d2_hundred_runs_two_workers_on_postgres(tmp_path, postgres_url):  # noqa: F811
    run_d2(tmp_path, runs=100, steps=10, workers=2, db_url=postgres_url, timeout=300)


def test_two_workers_on_sqlite(tmp_path):
    run_d2(tmp_path, runs=10, steps=5, workers=2, db_url=None, timeout=120)


@pytest.mark.heavy
@pytest.mark.postgres
def test_d2_five_hundred_runs_four_workers_on_postgres(tmp_path, postgres_url):  # noqa: F811
    run_d2(tmp_path, runs=500, steps=20, workers=4, db_url=postgres_url, timeout=1200)


def test_a_worker_refuses_without_its_parent_holding_the_lease(tmp_path):
    env = _env(tmp_path / "home", None)
    res = subprocess.run([sys.executable, "-m", "chute.cli.app", "controller", "--worker-of",
                          "nobody"], env=env, cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 1
    assert "does not hold the controller lease" in res.stderr
