"""The controller's commit connection on SQLite (``Store.write_conn``): a transaction begun
and ended on the sqlite3 connection itself, Core statements inside it, rollback, errors
as SQLAlchemy raises them, and WAL checkpoints left to a thread of their own."""

from __future__ import annotations

import json
import os
import sqlite3
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from chute.config import load_settings
from chute.store import checkpoint, leases
from chute.store import queries as q
from chute.store.db import open_store
from chute.store.models import EventRow, StepExecutionRow, WorkflowRow


@pytest.fixture
def store(chute_home):
    s = open_store(load_settings().ensure())
    yield s
    s.dispose()


def _event(i: int) -> dict:
    return {"transition_id": f"u/n{i}/0/Succeeded", "workflow_uid": "u", "node_id": f"n{i}",
            "from_phase": "Running", "to_phase": "Succeeded", "at": float(i), "message": None}


def _events(store) -> list[str]:
    with store.read() as s:
        return [e.transition_id for e in q.events_of(s, "u")]


def _other_connection(store) -> sqlite3.Connection:
    return sqlite3.connect(store.engine.url.database, timeout=0.2, isolation_level=None)


def test_a_write_conn_transaction_is_immediate_and_commits_at_the_end(store):
    with store.write_conn() as conn:
        q.record_events(conn, [_event(1)])
        other = _other_connection(store)
        try:
            # BEGIN IMMEDIATE: another writer cannot start until this one commits,
            # and a reader does not see the uncommitted row
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
            assert other.execute("SELECT count(*) FROM events").fetchone()[0] == 0
        finally:
            other.close()
    assert _events(store) == ["u/n1/0/Succeeded"]
    other = _other_connection(store)
    try:
        other.execute("BEGIN IMMEDIATE")  # the lock is free again
        other.execute("ROLLBACK")
    finally:
        other.close()


def test_an_exception_rolls_the_whole_transaction_back(store):
    with pytest.raises(RuntimeError), store.write_conn() as conn:
        q.record_events(conn, [_event(1)])
        conn.execute(insert(EventRow.__table__).values(**_event(2)))  # a Core statement too
        raise RuntimeError("boom")
    assert _events(store) == []
    with store.write_conn() as conn:  # the connection is usable again
        q.record_events(conn, [_event(3)])
    assert _events(store) == ["u/n3/0/Succeeded"]


def test_core_statements_join_the_same_transaction(store):
    with store.write_conn() as conn:
        q.record_events(conn, [_event(1)])  # on the sqlite3 connection
        conn.execute(insert(EventRow.__table__).values(**_event(2)))  # through SQLAlchemy
        assert conn.execute(select(EventRow.transition_id)).scalars().all() == [
            "u/n1/0/Succeeded", "u/n2/0/Succeeded"]
    assert _events(store) == ["u/n1/0/Succeeded", "u/n2/0/Succeeded"]
    with store.write_conn() as conn:  # and the next transaction begins cleanly
        q.record_events(conn, [_event(3)])
    assert len(_events(store)) == 3


def test_a_duplicate_launch_raises_sqlalchemys_integrity_error_and_writes_nothing(store):
    with store.write() as s:
        q.create_workflow(s, WorkflowRow(uid="u", name="a", namespace="default",
                                         kind="Workflow", spec={}, arguments={},
                                         phase="Running", created_at=time.time(),
                                         suspended=False, labels={}, outputs={}))
    with store.write_conn() as conn:
        leases.record_launches(conn, "me", [("u", "n", 0)], time.time())
    with pytest.raises(IntegrityError), store.write_conn() as conn:
        q.record_events(conn, [_event(1)])
        leases.record_launches(conn, "me", [("u", "n", 1), ("u", "n", 0)], time.time())
    assert _events(store) == []
    with store.read() as s:
        assert s.scalars(select(StepExecutionRow.attempt)).all() == [0]


def test_a_busy_database_raises_sqlalchemys_error_naming_the_lock(store):
    with store.write_conn() as conn:  # open the connection, and make it impatient
        conn.connection.driver_connection.execute("PRAGMA busy_timeout = 50")
    other = _other_connection(store)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(OperationalError, match="locked"), store.write_conn():
            pass
    finally:
        other.execute("ROLLBACK")
        other.close()
    with store.write_conn() as conn:
        q.record_events(conn, [_event(1)])
    assert _events(store) == ["u/n1/0/Succeeded"]


def test_checkpoints_run_on_their_own_thread_and_keep_the_wal_bounded(store, monkeypatch):
    monkeypatch.setattr(checkpoint, "KICK_EVERY", 8)
    monkeypatch.setattr(checkpoint, "RESTART_FRAMES", 64)  # 16 MB in use: too slow here
    path = store.engine.url.database
    with store.write_conn() as conn:
        raw = conn.connection.driver_connection
        # the committing connection checkpoints only far past the usual size
        assert raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == \
            checkpoint.FALLBACK_PAGES
    sizes = []
    for i in range(400):
        with store.write_conn() as conn:
            q.record_events(conn, [_event(i)])
        sizes.append(os.path.getsize(path + "-wal"))
        time.sleep(0.001)  # let the thread run now and then, as a controller's waits do
    deadline = time.monotonic() + 10
    while store._checkpointer.checkpoints < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store._checkpointer.checkpoints >= 10
    # the WAL was checkpointed and restarted from its beginning: it did not grow with
    # every commit (400 commits append ~1,600 pages, 6.5 MB, without checkpoints)
    assert max(sizes) < 2 * 2**20, max(sizes)
    assert len(_events(store)) == 400
    other = _other_connection(store)  # the database file has the rows (checkpointed)
    try:
        other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert other.execute("SELECT count(*) FROM events").fetchone()[0] == 400
    finally:
        other.close()


def test_a_disposed_store_stops_its_checkpoint_thread(chute_home):
    store = open_store(load_settings().ensure())
    with store.write_conn() as conn:
        q.record_events(conn, [_event(0)])
    store._checkpointer.kick()
    deadline = time.monotonic() + 5
    while store._checkpointer.checkpoints < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    cp = store._checkpointer
    assert cp.checkpoints == 1
    store.dispose()
    assert cp._thread is None or not cp._thread.is_alive()
    assert store._checkpointer is None
    with store.read() as s:  # still usable after dispose (the pool reconnects)
        assert s.execute(text("SELECT count(*) FROM events")).scalar() == 1


@given(st.one_of(
    st.dictionaries(st.text(), st.text(), max_size=5),
    st.lists(st.text(), max_size=5),
    st.dictionaries(st.text(), st.one_of(st.text(), st.integers(), st.none(),
                                         st.lists(st.text(), max_size=2)), max_size=4),
    st.lists(st.one_of(st.text(), st.integers(), st.dictionaries(st.text(), st.text())),
             max_size=4),
    # anything JSON (the shapes no shortcut covers go through a C encoder made once)
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                 lambda kids: st.lists(kids, max_size=3)
                 | st.dictionaries(st.text(), kids, max_size=3), max_leaves=12)))
def test_node_json_columns_are_encoded_exactly_as_json_dumps(value):
    assert q._json_text(value) == json.dumps(value)


def test_node_objects_are_written_as_their_row_dicts_would_be(store):
    from chute.engine.nodes import Node

    def rows(uid: str) -> list[tuple]:
        with store.write_conn() as conn:
            raw = conn.connection.driver_connection
            return [r[1:] for r in raw.execute(
                f"SELECT workflow_uid, node_id, {', '.join(q.NODE_COLUMNS)} FROM nodes "
                "WHERE workflow_uid = ? ORDER BY pk", (uid,))]

    with store.write() as s:
        for uid in ("a", "b"):
            q.create_workflow(s, WorkflowRow(uid=uid, name=uid, namespace="default",
                                             kind="Workflow", spec={}, arguments={},
                                             phase="Running", created_at=1.0,
                                             suspended=False, labels={}, outputs={}))
    nodes = [Node(id="n1", name="w.n1", display_name="n1", type="Pod", phase="Running",
                  children=["n2", "é\"x"], inputs={"parameters": [{"name": "p", "value": "1"}]},
                  outputs={"exitCode": "0", "result": "ünï"}, exit_code=0, started_at=2.5,
                  attempt=1, step_dir="/s/n1", cached=True),
             Node(id="n2", name="w.n2", display_name="n2", type="DAG", phase="Pending")]
    with store.write_conn() as conn:
        q.write_node_objects(conn, "a", nodes, [])
        q.insert_nodes(conn, "b", [n.to_row() for n in nodes])
    assert rows("a") == rows("b") and len(rows("a")) == 2
    nodes[1].phase, nodes[1].message, nodes[1].children = "Succeeded", "done", ["n1"]
    with store.write_conn() as conn:
        q.write_node_objects(conn, "a", [], [nodes[1]])
        q.update_nodes(conn, "b", [nodes[1].to_row()])
    assert rows("a") == rows("b")
    assert rows("a")[1][5] == "Succeeded"
