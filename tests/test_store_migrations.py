"""D-4: migrations, on SQLite and PostgreSQL.

- From each released revision with data in every table, upgrading to head keeps every
  row's values and the app works on the result (list/get through the store and the API,
  and a new workflow runs).
- Upgrading a migrated database again changes nothing.
- A migration SIGKILLed half-way (right after one of its operations) leaves the database
  at the old revision with its data, and the next start migrates it.
- A database whose revision is newer than this build knows fails startup by name.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from sqlalchemy import Boolean, Float, Integer, MetaData, String, Text, inspect, select, text

from chute.config import load_settings
from chute.errors import StoreError
from chute.store.db import current_revision, head_revision, known_revisions, make_engine, upgrade
from tests.conftest import REPO
from tests.fixtures.postgres import postgres_server, postgres_url  # noqa: F401

pytestmark = pytest.mark.usefixtures("chute_home")


def revisions_in_order() -> list[str]:
    """Every revision from the first to head."""
    down = known_revisions()
    order, rev = [], head_revision()
    while rev:
        order.append(rev)
        rev = down[rev]
    return order[::-1]


WORKFLOW = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": "old-run", "namespace": "default", "uid": "wf-uid-0"},
            "spec": {"entrypoint": "main", "templates": [
                {"name": "main", "container": {"image": "busybox", "command": ["echo", "hi"]}}]}}
# realistic values where the app reads them; every other column gets a value by its type
OVERRIDES = {
    "workflows": lambda i: {"uid": f"wf-uid-{i}", "name": f"old-run-{i}", "kind": "Workflow",
                            "spec": {**WORKFLOW, "metadata": {**WORKFLOW["metadata"],
                                                              "name": f"old-run-{i}",
                                                              "uid": f"wf-uid-{i}"}},
                            "phase": "Succeeded", "arguments": {}, "labels": {"k": "v"},
                            "outputs": {}, "suspended": False, "lease_owner": None,
                            "lease_expires_at": None, "experiment_id": None,
                            "created_at": 1_700_000_000.0 + i, "state_format": 1},
    "nodes": lambda i: {"node_id": f"wf-uid-{i}", "name": f"old-run-{i}",
                        "display_name": f"old-run-{i}", "type": "Pod", "phase": "Succeeded",
                        "template_name": "main", "boundary_id": None, "parent_id": None,
                        "children": [], "inputs": {}, "outputs": {"exitCode": "0"},
                        "exit_code": 0, "started_at": 1_700_000_000.0,
                        "finished_at": 1_700_000_001.0, "attempt": 0, "cached": False},
    "templates": lambda i: {"kind": "WorkflowTemplate", "spec": {**WORKFLOW,
                                                                "kind": "WorkflowTemplate"}},
}


def _value(table: str, col, i: int, parents: dict) -> object:
    """A value for ``col`` of row ``i``: the parent's key for a foreign key, else by type."""
    for fk in col.foreign_keys:
        return parents[fk.column.table.name][i][fk.column.name]
    t = col.type
    if isinstance(t, Boolean):
        return i % 2 == 0
    if isinstance(t, Integer):
        return 7 + i
    if isinstance(t, Float):
        return 1_700_000_000.25 + i
    if isinstance(t, String | Text):
        s = f"{table}.{col.name}.{i}"
        return s[-t.length:] if getattr(t, "length", None) else s
    return {"table": table, "column": col.name, "row": i, "list": [1, 2.5, "x", None]}


def fill(engine, rows_per_table: int = 2) -> dict[str, list[dict]]:
    """Insert rows into every table of the schema as it is now; the rows inserted."""
    meta = MetaData()
    meta.reflect(engine)
    inserted: dict[str, list[dict]] = {}
    with engine.begin() as conn:
        for table in meta.sorted_tables:
            if table.name == "alembic_version":
                continue
            rows = []
            for i in range(rows_per_table):
                row = {c.name: _value(table.name, c, i, inserted) for c in table.columns
                       if not (c.primary_key and c.autoincrement is not False
                               and isinstance(c.type, Integer))}
                row.update(OVERRIDES.get(table.name, lambda i: {})(i))
                rows.append({k: v for k, v in row.items() if k in table.c})
            for row in rows:
                res = conn.execute(table.insert().values(**row))
                for c, v in zip(table.primary_key.columns, res.inserted_primary_key):
                    row[c.name] = v
            inserted[table.name] = rows
    return inserted


def read_back(engine, inserted: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """The same tables and columns as ``inserted``, read now (in primary key order)."""
    meta = MetaData()
    meta.reflect(engine)
    out = {}
    with engine.connect() as conn:
        for name, rows in inserted.items():
            table = meta.tables[name]
            cols = [table.c[k] for k in rows[0]]
            res = conn.execute(select(*cols).order_by(*table.primary_key.columns))
            out[name] = [dict(r._mapping) for r in res]
    return out


def schema_of(engine) -> str:
    """Tables, columns, indexes and the revision, as text to compare."""
    insp = inspect(engine)
    out = {t: {"columns": [(c["name"], str(c["type"]), c["nullable"])
                           for c in insp.get_columns(t)],
               "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                                 for i in insp.get_indexes(t))}
           for t in sorted(insp.get_table_names())}
    return json.dumps({"schema": out, "rev": current_revision(engine)}, sort_keys=True)


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request, tmp_path):
    """Settings of a fresh, empty store (SQLite file, or a new PostgreSQL database)."""
    env = {"CHUTE_HOME": str(tmp_path / "home")}
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
        env["CHUTE_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    return load_settings(env).ensure()


def _app_works(settings, names: list[str]) -> None:
    """The store, the API and the engine work on the migrated database."""
    from fastapi.testclient import TestClient

    from chute.engine.controller import Controller
    from chute.engine.fake import FakeExecutor
    from chute.engine.submit import submit
    from chute.server.app import create_app
    from chute.spec.loader import load_resource
    from chute.store import queries as q
    from chute.store.db import open_store

    store = open_store(settings)
    with store.read() as s:
        assert sorted(r.name for r in q.list_workflows(s)) == sorted(names)
        assert [n.display_name for n in q.nodes_of(s, "wf-uid-0")] == ["old-run-0"]
    app = create_app(settings)
    with TestClient(app, headers={"Authorization": f"Bearer {app.state.ctx.new_token}"}) as api:
        listed = api.get("/api/v1/runs")
        assert listed.status_code == 200 and listed.json()["total"] == len(names)
        doc = api.get(f"/api/v1/runs/{names[0]}")
        assert doc.status_code == 200, doc.text
        assert doc.json()["status"]["phase"] == "Succeeded"
    new = submit(store, load_resource({**WORKFLOW, "metadata": {"name": "after-upgrade"}}))
    ctl = Controller(store, settings, FakeExecutor())
    try:
        ctl.run_until_done([new.uid], timeout=60)
    finally:
        ctl.close()
    with store.read() as s:
        assert q.get_workflow(s, "after-upgrade").phase == "Succeeded"
    store.dispose()


@pytest.mark.parametrize("start", revisions_in_order())
def test_upgrade_from_each_revision_keeps_the_data(settings, start):
    engine = make_engine(settings.database_url)
    upgrade(engine, settings, start)
    assert current_revision(engine) == start
    inserted = fill(engine)
    upgrade(engine, settings)
    assert current_revision(engine) == head_revision()
    assert read_back(engine, inserted) == inserted
    # upgrading again, even past the fast path, changes nothing
    before = schema_of(engine)
    from alembic import command

    from chute.store.db import _alembic_config

    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "head")
    upgrade(engine, settings)
    assert schema_of(engine) == before
    assert read_back(engine, inserted) == inserted
    engine.dispose()
    _app_works(settings, [r["name"] for r in inserted["workflows"]])


KILLER = r"""
import os, signal, sys
from sqlalchemy import event
from chute.config import load_settings
from chute.store.db import make_engine, upgrade
settings = load_settings()
engine = make_engine(settings.database_url)
marker = sys.argv[1]

@event.listens_for(engine, "before_cursor_execute")
def _maybe_die(conn, cursor, statement, params, context, many):
    if marker in statement:  # the operation before this one ran, uncommitted
        os.kill(os.getpid(), signal.SIGKILL)

upgrade(engine, settings)
print("not killed")
"""

# statements that start the second operation of a migration (0004, 0007) or the last one
KILL_POINTS = ["ADD COLUMN resumed_at", "ADD COLUMN idempotency_key",
               "CREATE INDEX ix_workflows_phase_created"]


@pytest.mark.parametrize("marker", KILL_POINTS)
def test_a_migration_killed_half_way_leaves_the_old_schema_usable(settings, marker):
    engine = make_engine(settings.database_url)
    upgrade(engine, settings, "0001")
    inserted = fill(engine)
    before = schema_of(engine)
    env = dict(os.environ, CHUTE_HOME=str(settings.home),
               CHUTE_DATABASE_URL=settings.database_url)
    proc = subprocess.run([sys.executable, "-c", KILLER, marker], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, (proc.stdout, proc.stderr)
    # nothing of the interrupted upgrade is left: the old revision, schema and data
    assert current_revision(engine) == "0001"
    assert schema_of(engine) == before
    assert read_back(engine, inserted) == inserted
    engine.dispose()
    # the next start migrates it
    _app_works(settings, [r["name"] for r in inserted["workflows"]])


def test_a_database_newer_than_this_build_fails_startup_by_name(settings):
    from chute.store.db import open_store

    engine = make_engine(settings.database_url)
    upgrade(engine, settings)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    before = schema_of(engine)
    with pytest.raises(StoreError, match="'9999_from_the_future'.*does not know"):
        open_store(settings)
    assert schema_of(engine) == before  # nothing was touched
    engine.dispose()
    env = dict(os.environ, CHUTE_HOME=str(settings.home),
               CHUTE_DATABASE_URL=settings.database_url)
    cli = subprocess.run([sys.executable, "-m", "chute.cli.app", "list"], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode != 0
    assert "9999_from_the_future" in cli.stderr and "upgrade chute" in cli.stderr


def test_a_failing_migration_fails_startup_loudly_and_changes_nothing(settings):
    from sqlalchemy import event

    from chute.store.db import open_store

    engine = make_engine(settings.database_url)
    upgrade(engine, settings, "0004_workflow_control")
    inserted = fill(engine)
    before = schema_of(engine)
    engine.dispose()

    def fail(conn, cursor, statement, params, context, many):
        if "ADD COLUMN idempotency_key" in statement:
            raise RuntimeError("disk full (simulated)")

    from sqlalchemy.engine import Engine

    event.listen(Engine, "before_cursor_execute", fail)
    try:
        with pytest.raises(StoreError, match="database migration failed: .*disk full"):
            open_store(settings)
    finally:
        event.remove(Engine, "before_cursor_execute", fail)
    engine = make_engine(settings.database_url)
    assert schema_of(engine) == before and current_revision(engine) == "0004_workflow_control"
    assert read_back(engine, inserted) == inserted
    engine.dispose()
