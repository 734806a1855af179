"""D-1/D-2 in small: workflows submitted from 4 processes at once, on SQLite and on
PostgreSQL, run by one standalone controller: none lost, no node lost or duplicated, no
"database is locked"."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO
from tests.fixtures.postgres import postgres_server, postgres_url  # noqa: F401

SUBMITTER = r"""
import sys
from chute.config import load_settings
from chute.engine.submit import submit
from chute.spec.loader import load_documents
from chute.store.db import open_store
store = open_store(load_settings())
proc, count, steps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
tasks = "\n".join(
    f"      - {{name: t{i}, template: t" + (f", dependencies: [t{i // 2}]}}" if i else "}")
    for i in range(steps))
for k in range(count):
    text = f'''
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: load-{proc}-{k}}}
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
{tasks}
  - name: t
    container: {{image: busybox, command: [sh, -c, "true"]}}
'''
    submit(store, load_documents(text)[0])
"""


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request) -> str | None:
    """None for the default SQLite file in CHUTE_HOME, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    request.applymarker(pytest.mark.postgres)
    return request.getfixturevalue("postgres_url")


def _load(tmp_path, per_process: int, steps: int, timeout: float,
          db_url: str | None = None) -> None:
    from chute.config import load_settings
    from chute.store import queries as q
    from chute.store.db import open_store

    env = dict(os.environ, CHUTE_HOME=str(tmp_path / "home"), CHUTE_LEASE_TTL="5")
    env.pop("CHUTE_DATABASE_URL", None)
    if db_url:
        env["CHUTE_DATABASE_URL"] = db_url
    t0 = time.monotonic()
    subs = [subprocess.Popen([sys.executable, "-c", SUBMITTER, str(p), str(per_process),
                              str(steps)], env=env, cwd=REPO, stderr=subprocess.PIPE, text=True)
            for p in range(4)]
    ctl = subprocess.Popen([sys.executable, "-m", "chute.cli.app", "controller"], env=env,
                           cwd=REPO, stderr=subprocess.PIPE, text=True)
    errors = [s.communicate(timeout=timeout)[1] for s in subs]
    assert all(s.returncode == 0 for s in subs), errors
    store = open_store(load_settings({k: v for k, v in env.items() if k.startswith("CHUTE_")}))
    want = {f"load-{p}-{k}" for p in range(4) for k in range(per_process)}
    deadline = time.monotonic() + timeout
    try:
        while True:
            with store.read() as s:
                rows = q.list_workflows(s)
            if len(rows) == len(want) and all(r.phase not in ("Pending", "Running") for r in rows):
                break
            assert time.monotonic() < deadline, [(r.name, r.phase) for r in rows
                                                 if r.phase in ("Pending", "Running")][:5]
            time.sleep(0.5)
    finally:
        ctl.send_signal(signal.SIGTERM)
        _, ctl_err = ctl.communicate(timeout=60)
    print(f"{len(want)} workflows x {steps} steps: all terminal in "
          f"{time.monotonic() - t0:.1f} s")
    assert {r.name for r in rows} == want
    assert all(r.phase == "Succeeded" for r in rows)
    with store.read() as s:
        for r in rows:
            pods = [n for n in q.nodes_of(s, r.uid) if n.type == "Pod"]
            assert sorted(n.display_name for n in pods) == sorted(f"t{i}" for i in range(steps))
            assert all(n.phase == "Succeeded" for n in pods)
    assert "database is locked" not in ctl_err + "".join(errors)
    assert "deadlock detected" not in ctl_err + "".join(errors)


def test_concurrent_submitters_one_controller(tmp_path, db_url):
    _load(tmp_path, per_process=5, steps=10, timeout=240, db_url=db_url)


@pytest.mark.heavy
def test_d1_hundred_workflows(tmp_path, db_url):
    _load(tmp_path, per_process=25, steps=20, timeout=600, db_url=db_url)
