"""The metadata store: migrations, SQLite tuning, the journal and leases."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from chute.config import load_settings
from chute.errors import LeaseHeldError
from chute.store import leases
from chute.store import queries as q
from chute.store.db import current_revision, head_revision, open_store
from chute.store.models import WorkflowRow


@pytest.fixture
def store(chute_home):
    s = open_store(load_settings().ensure())
    yield s
    s.dispose()


def _wf(name: str, uid: str) -> WorkflowRow:
    return WorkflowRow(uid=uid, name=name, namespace="default", kind="Workflow", spec={},
                       arguments={}, phase="Pending", created_at=time.time(), suspended=False,
                       labels={}, outputs={})


def test_open_migrates_to_head_and_is_idempotent(store, chute_home):
    assert current_revision(store.engine) == head_revision() is not None
    again = open_store(load_settings())  # second open: nothing to do, no error
    assert current_revision(again.engine) == head_revision()


def test_sqlite_runs_in_wal_with_a_busy_timeout(store):
    with store.read() as s:
        assert s.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert s.execute(text("PRAGMA busy_timeout")).scalar() >= 5000


def test_duplicate_transition_ids_are_no_ops(store):
    ev = {"transition_id": "u/n/0/Succeeded", "workflow_uid": "u", "node_id": "n",
          "from_phase": "Running", "to_phase": "Succeeded", "at": 1.0, "message": None}
    with store.write() as s:
        q.record_events(s, [ev])
    with store.write() as s:
        q.record_events(s, [ev, {**ev, "transition_id": "u/n/0/Other"}])
    with store.read() as s:
        assert [e.transition_id for e in q.events_of(s, "u")] == ["u/n/0/Succeeded", "u/n/0/Other"]


def test_nodes_insert_update_round_trip(store):
    with store.write() as s:
        q.create_workflow(s, _wf("a", "u1"))
        q.insert_nodes(s, "u1", [{"node_id": "a", **{c: None for c in q.NODE_COLUMNS},
                                  "name": "a", "display_name": "a", "type": "Pod",
                                  "phase": "Running", "children": [], "inputs": {},
                                  "outputs": {}, "attempt": 0, "cached": False}])
    with store.write() as s:
        row = q.node_dict(q.nodes_of(s, "u1")[0])
        q.update_nodes(s, "u1", [{**row, "phase": "Succeeded", "outputs": {"result": "x"}}])
    with store.read() as s:
        n = q.nodes_of(s, "u1")[0]
        assert (n.phase, n.outputs) == ("Succeeded", {"result": "x"})


def test_workflow_lease_is_exclusive_until_it_expires(store):
    with store.write() as s:
        q.create_workflow(s, _wf("w", "u2"))
    now = time.time()
    with store.write() as s:
        assert leases.claim_workflow(s, "u2", "ctl-1", now, 10)
    with store.write() as s:
        assert not leases.claim_workflow(s, "u2", "ctl-2", now + 1, 10)
        assert leases.claimable_workflows(s, now + 1) == []
    with store.write() as s:  # expired: a later controller adopts it
        assert leases.claim_workflow(s, "u2", "ctl-2", now + 11, 10)
        assert leases.renew_workflow_leases(s, "ctl-1", ["u2"], now + 12, 10) == set()


def test_second_controller_is_refused_naming_the_holder(store):
    with store.write() as s:
        leases.acquire_lease(s, "controller", "ctl-1", time.time(), 15)
    with pytest.raises(LeaseHeldError, match="lease held by pid"), store.write() as s:
        leases.acquire_lease(s, "controller", "ctl-2", time.time(), 15)


def test_head_revision_agrees_with_alembic():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from chute.store.db import MIGRATIONS_DIR

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert head_revision() == ScriptDirectory.from_config(cfg).get_current_head()


def test_models_match_the_migrated_schema(store):
    from sqlalchemy import inspect

    from chute.store.models import Base

    insp = inspect(store.engine)
    for table in Base.metadata.sorted_tables:
        if not insp.has_table(table.name):
            continue  # tables of other packages' models live in their migrations
        cols = {c["name"] for c in insp.get_columns(table.name)}
        assert {c.name for c in table.columns} <= cols, table.name
