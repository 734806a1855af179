"""The store and the engine on a real PostgreSQL server (skips with a reason without one)."""

from __future__ import annotations

import time

import pytest

from chute.config import load_settings
from chute.errors import LeaseHeldError
from chute.store import leases
from chute.store import queries as q
from chute.store.db import current_revision, head_revision, open_store
from tests.fixtures.postgres import postgres_server, postgres_url  # noqa: F401

pytestmark = pytest.mark.postgres

DAG = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: pg-dag}
spec:
  entrypoint: d
  templates:
  - name: d
    dag:
      tasks:
      - {name: a, template: t}
      - {name: b, dependencies: [a], template: t, withItems: [1, 2, 3]}
      - {name: c, dependencies: [b], template: t}
  - name: t
    container: {image: busybox, command: [echo, hi]}
"""


@pytest.fixture
def pg_store(postgres_url, tmp_path):  # noqa: F811
    settings = load_settings({"CHUTE_HOME": str(tmp_path / "home"),
                              "CHUTE_DATABASE_URL": postgres_url}).ensure()
    store = open_store(settings)
    yield store, settings
    store.dispose()


def test_migrations_journal_and_leases_on_postgres(pg_store):
    store, _ = pg_store
    assert current_revision(store.engine) == head_revision()
    ev = {"transition_id": "t1", "workflow_uid": "u", "node_id": "n", "from_phase": None,
          "to_phase": "Running", "at": 1.0, "message": None}
    with store.write() as s:
        q.record_events(s, [ev, ev])
    with store.read() as s:
        assert len(q.events_of(s, "u")) == 1
    with store.write() as s:
        leases.acquire_lease(s, "controller", "one", time.time(), 15)
    with pytest.raises(LeaseHeldError), store.write() as s:
        leases.acquire_lease(s, "controller", "two", time.time(), 15)


def test_a_workflow_runs_on_postgres(pg_store):
    from chute.engine.controller import Controller
    from chute.engine.fake import FakeExecutor
    from chute.engine.submit import submit
    from chute.spec.loader import load_documents

    store, settings = pg_store
    row = submit(store, load_documents(DAG)[0])
    ctl = Controller(store, settings, FakeExecutor())
    ctl.run_until_done([row.uid], timeout=60)
    ctl.close()
    with store.read() as s:
        wf = q.get_workflow(s, row.uid)
        nodes = q.nodes_of(s, row.uid)
    assert wf.phase == "Succeeded"
    assert sum(n.type == "Pod" for n in nodes) == 5
    assert all(n.phase == "Succeeded" for n in nodes)
