"""Store functions: each takes the session first and never commits (the caller does).

Workflows, nodes, the transition journal, memoized outputs and stored templates (the
leases and launch records are :mod:`chute.store.leases`). Bulk node writes use
executemany so that a 10,000-node fan-out is a handful of statements.
"""

from __future__ import annotations

import functools
import json
import operator
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import and_, bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from chute.errors import ConflictError, NotFoundError
from chute.store.models import (
    ArtifactRow,
    CacheEntryRow,
    EventRow,
    NodeRow,
    StepExecutionRow,
    TemplateRow,
    WorkflowRow,
)


def _conn(session: Session | Connection) -> Connection:
    """The Core connection under a session (or the connection itself)."""
    return session.connection() if isinstance(session, Session) else session
NODE_COLUMNS = (
    "name", "display_name", "type", "template_name", "phase", "boundary_id", "parent_id",
    "children", "inputs", "outputs", "exit_code", "message", "started_at", "finished_at",
    "attempt", "step_dir", "cached",
)


# -- workflows ---------------------------------------------------------------------------

def create_workflow(session: Session, row: WorkflowRow) -> WorkflowRow:
    """Insert a new workflow; ConflictError if the name is taken. A row with an
    ``idempotency_key`` already stored is not inserted: the caller checks
    :func:`workflow_by_key` first (and on PostgreSQL a concurrent insert of the same key
    fails on the unique index)."""
    if session.scalar(select(WorkflowRow.uid).where(WorkflowRow.name == row.name)):
        raise ConflictError(f"workflow {row.name!r} already exists")
    session.add(row)
    session.flush()
    return row


def get_workflow(session: Session, name_or_uid: str) -> WorkflowRow:
    """The workflow with this name (or uid); NotFoundError if there is none."""
    row = session.scalar(select(WorkflowRow).where(WorkflowRow.name == name_or_uid))
    if row is None:
        row = session.get(WorkflowRow, name_or_uid)
    if row is None:
        raise NotFoundError(f"workflow {name_or_uid!r} not found")
    return row


def workflow_by_key(session: Session, key: str) -> WorkflowRow | None:
    """The workflow submitted under idempotency key ``key``, or None."""
    return session.scalar(select(WorkflowRow).where(WorkflowRow.idempotency_key == key))


def find_workflow(session: Session, uid: str) -> WorkflowRow | None:
    """The workflow with this uid, or None."""
    return session.get(WorkflowRow, uid)


def list_workflows(
    session: Session, phases: Sequence[str] | None = None, limit: int | None = None
) -> list[WorkflowRow]:
    """Workflows, newest first, optionally only those in ``phases``."""
    q = select(WorkflowRow).order_by(WorkflowRow.created_at.desc())
    if phases:
        q = q.where(WorkflowRow.phase.in_(list(phases)))
    if limit:
        q = q.limit(limit)
    return list(session.scalars(q))


def name_exists(session: Session, name: str) -> bool:
    """Whether a workflow of this name exists."""
    return session.scalar(select(WorkflowRow.uid).where(WorkflowRow.name == name)) is not None


def update_workflow(session: Session | Connection, uid: str, **values: Any) -> None:
    """Set columns of one workflow."""
    _conn(session).execute(update(WorkflowRow.__table__)
                           .where(WorkflowRow.__table__.c.uid == uid).values(**values))


def delete_workflow(session: Session, uid: str) -> None:
    """Delete a workflow with its nodes and journal."""
    session.execute(delete(NodeRow).where(NodeRow.workflow_uid == uid))
    session.execute(delete(StepExecutionRow).where(StepExecutionRow.workflow_uid == uid))
    session.execute(delete(EventRow).where(EventRow.workflow_uid == uid))
    session.execute(delete(WorkflowRow).where(WorkflowRow.uid == uid))


def control_of(session: Session, uids: Sequence[str]
               ) -> dict[str, tuple[bool, str | None, float | None]]:
    """``uid -> (suspended, shutdown, resumed_at)``: what the CLI asked of these workflows."""
    if not uids:
        return {}
    rows = session.execute(select(WorkflowRow.uid, WorkflowRow.suspended, WorkflowRow.shutdown,
                                  WorkflowRow.resumed_at)
                           .where(WorkflowRow.uid.in_(list(uids))))
    return {uid: (bool(s), sd, r) for uid, s, sd, r in rows}


# -- nodes -------------------------------------------------------------------------------

# SQLite, the default store, is written by the controller every turn: its node and event
# writes go straight to the sqlite3 connection (inside the same transaction) with SQL
# made once, since SQLAlchemy's per-statement machinery costs more than the statements.
# The values are bound as SQLAlchemy binds them there (JSON columns as json.dumps text,
# booleans as integers), so either path reads back alike.
_JSON_COLUMNS = frozenset(("children", "inputs", "outputs"))
_SQLITE_INSERT_NODES = (
    f"INSERT INTO nodes (workflow_uid, node_id, {', '.join(NODE_COLUMNS)}) "
    f"VALUES (?, ?{', ?' * len(NODE_COLUMNS)})"
)
_SQLITE_UPDATE_NODES = (
    f"UPDATE nodes SET {', '.join(f'{c} = ?' for c in NODE_COLUMNS)} "
    "WHERE workflow_uid = ? AND node_id = ?"
)
_EVENT_COLUMNS = ("transition_id", "workflow_uid", "node_id", "from_phase", "to_phase", "at",
                  "message")
_SQLITE_INSERT_EVENTS = (
    f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) VALUES ({', '.join('?' * 7)}) "
    "ON CONFLICT (transition_id) DO NOTHING"
)


def _run(raw: sqlite3.Connection, sql: str, rows: list) -> None:
    """Run ``sql`` for each of ``rows`` on a sqlite3 connection: one ``execute`` for a
    single row (a chain's commit writes one of most things), whose ``executemany`` costs
    about twice as much."""
    if len(rows) == 1:
        raw.execute(sql, rows[0])
    else:
        raw.executemany(sql, rows)


def _sqlite(conn: Connection):
    """The sqlite3 connection under ``conn`` (in its transaction), or None if not SQLite."""
    if conn.dialect.name != "sqlite":
        return None
    return conn.connection.driver_connection


_JSON_INDEX = tuple(i for i, c in enumerate(NODE_COLUMNS) if c in _JSON_COLUMNS)
_CACHED_INDEX = NODE_COLUMNS.index("cached")


_quote = json.encoder.encode_basestring_ascii  # json.dumps's quoting of a str (C)
# json.dumps's encoder, made once: json.dumps makes a JSONEncoder and its C encoder per
# call, twice the cost of encoding a node's inputs. No check for circular references
# (node values are JSON read from a spec or a step: they have none).
_c_encoder = json.encoder.c_make_encoder and json.encoder.c_make_encoder(
    None, json.JSONEncoder().default, _quote, None, ": ", ", ", False, False, True)


def _dumps(v: Any) -> str:
    """``json.dumps(v)``: the same text."""
    if _c_encoder is None:  # a Python without the json accelerator
        return json.dumps(v)
    return "".join(_c_encoder(v, 0))


def _json_text(v: Any) -> str:
    """``json.dumps(v)``, the same text, built directly for the shapes most nodes have:
    empty, a list of strings (``children``), a dict of strings (``outputs`` of a step
    without parameters). ``json.dumps`` sets up an encoder per call, which costs more
    than encoding such a value; every node written pays it for three columns."""
    t = type(v)
    if t is dict:
        if not v:
            return "{}"
        if all(type(k) is str and type(x) is str for k, x in v.items()):
            return "{" + ", ".join(_quote(k) + ": " + _quote(x) for k, x in v.items()) + "}"
    elif t is list:
        if not v:
            return "[]"
        if all(type(x) is str for x in v):
            return "[" + ", ".join(map(_quote, v)) + "]"
    return _dumps(v)


def _node_values(n: dict[str, Any]) -> list[Any]:
    """A node dict's NODE_COLUMNS values as SQLAlchemy would bind them on SQLite."""
    out = [n[c] for c in NODE_COLUMNS]
    for i in _JSON_INDEX:
        out[i] = _json_text(out[i])
    if out[_CACHED_INDEX] is not None:
        out[_CACHED_INDEX] = int(bool(out[_CACHED_INDEX]))
    return out


_NODE_ATTRS = operator.attrgetter("id", *NODE_COLUMNS)


def _object_values(n: Any) -> list[Any]:
    """A node object's ``id`` and NODE_COLUMNS values (the attributes of those names) as
    SQLAlchemy would bind them on SQLite: no dict built for it on the way."""
    out = list(_NODE_ATTRS(n))
    for i in _JSON_INDEX:
        out[i + 1] = _json_text(out[i + 1])
    if out[_CACHED_INDEX + 1] is not None:
        out[_CACHED_INDEX + 1] = int(bool(out[_CACHED_INDEX + 1]))
    return out


def write_node_objects(session: Session | Connection, workflow_uid: str, new: Sequence[Any],
                       changed: Sequence[Any]) -> None:
    """Insert ``new`` and update ``changed`` nodes given as objects with an ``id`` and the
    NODE_COLUMNS as attributes (the engine's nodes): the controller's per-turn write."""
    if not new and not changed:
        return
    conn = _conn(session)
    raw = _sqlite(conn)
    if raw is None:
        def row(n: Any) -> dict[str, Any]:
            values = _NODE_ATTRS(n)
            return {"node_id": values[0], **dict(zip(NODE_COLUMNS, values[1:], strict=True))}

        insert_nodes(session, workflow_uid, [row(n) for n in new])
        update_nodes(session, workflow_uid, [row(n) for n in changed])
        return
    if new:
        _run(raw, _SQLITE_INSERT_NODES, [[workflow_uid, *_object_values(n)] for n in new])
    if changed:
        rows = []
        for n in changed:
            values = _object_values(n)
            rows.append([*values[1:], workflow_uid, values[0]])
        _run(raw, _SQLITE_UPDATE_NODES, rows)


def insert_nodes(session: Session, workflow_uid: str, nodes: Iterable[dict[str, Any]]) -> None:
    """Insert new nodes (dicts with ``node_id`` and the NODE_COLUMNS)."""
    nodes = list(nodes)
    if not nodes:
        return
    conn = _conn(session)
    raw = _sqlite(conn)
    if raw is not None:
        raw.executemany(_SQLITE_INSERT_NODES,
                        [[workflow_uid, n["node_id"], *_node_values(n)] for n in nodes])
        return
    # Core executemany: the ORM's bulk path costs more than the SQL
    conn.execute(insert(NodeRow.__table__), [{"workflow_uid": workflow_uid, **n} for n in nodes])


@functools.cache
def _update_nodes_stmt():
    # built once: constructing the statement costs more than running it for one row
    return (
        update(NodeRow.__table__)
        .where(and_(NodeRow.__table__.c.workflow_uid == bindparam("b_wf"),
                    NodeRow.__table__.c.node_id == bindparam("b_id")))
        .values({c: bindparam(c) for c in NODE_COLUMNS})
    )


def update_nodes(session: Session, workflow_uid: str, nodes: Iterable[dict[str, Any]]) -> None:
    """Update existing nodes, matched on (workflow_uid, node_id); one executemany."""
    nodes = list(nodes)
    if not nodes:
        return
    conn = _conn(session)
    raw = _sqlite(conn)
    if raw is not None:
        raw.executemany(_SQLITE_UPDATE_NODES,
                        [[*_node_values(n), workflow_uid, n["node_id"]] for n in nodes])
        return
    rows = [{"b_wf": workflow_uid, "b_id": n["node_id"], **{c: n[c] for c in NODE_COLUMNS}}
            for n in nodes]
    conn.execute(_update_nodes_stmt(), rows)


def nodes_of(session: Session, workflow_uid: str) -> list[NodeRow]:
    """Every node of a workflow, in insertion order."""
    return list(session.scalars(
        select(NodeRow).where(NodeRow.workflow_uid == workflow_uid).order_by(NodeRow.pk)
    ))


def node_dict(row: NodeRow) -> dict[str, Any]:
    """A node row as a plain dict (``node_id`` plus NODE_COLUMNS)."""
    return {"node_id": row.node_id, **{c: getattr(row, c) for c in NODE_COLUMNS}}


# -- journal -----------------------------------------------------------------------------

def record_events(session: Session, events: Iterable[dict[str, Any]]) -> None:
    """Append transitions; one whose ``transition_id`` exists already is a no-op (R-8)."""
    rows = list(events)
    if not rows:
        return
    conn = _conn(session)
    raw = _sqlite(conn)
    if raw is not None:
        _run(raw, _SQLITE_INSERT_EVENTS, [[e.get(c) for c in _EVENT_COLUMNS] for e in rows])
        return
    conn.execute(_insert_events_stmt(conn.dialect.name), rows)


@functools.cache
def _insert_events_stmt(dialect: str):
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert(EventRow.__table__).on_conflict_do_nothing(
        index_elements=["transition_id"])


def completions(session: Session, workflow_uid: str) -> int:
    """How many times the workflow reached a final phase (once, plus once per retry)."""
    from sqlalchemy import func

    return session.scalar(select(func.count()).select_from(EventRow).where(
        EventRow.workflow_uid == workflow_uid, EventRow.node_id.is_(None),
        EventRow.to_phase.in_(("Succeeded", "Failed", "Error")))) or 0


def events_of(session: Session, workflow_uid: str) -> list[EventRow]:
    """The transition journal of one workflow, oldest first."""
    return list(session.scalars(
        select(EventRow).where(EventRow.workflow_uid == workflow_uid).order_by(EventRow.pk)
    ))


# -- artifacts ---------------------------------------------------------------------------

def artifact_names(session: Session, workflow_uid: str, node_id: str) -> set[str]:
    """The names of the artifacts recorded for one node."""
    return set(session.scalars(select(ArtifactRow.name).where(
        ArtifactRow.workflow_uid == workflow_uid, ArtifactRow.node_id == node_id)))


# -- memoization -------------------------------------------------------------------------

def cache_get(session: Session, key: str, not_before: float | None) -> dict[str, Any] | None:
    """The newest memoized outputs under ``key`` created at or after ``not_before``."""
    q = select(CacheEntryRow.outputs).where(CacheEntryRow.key == key)
    if not_before is not None:
        q = q.where(CacheEntryRow.created_at >= not_before)
    return session.scalar(q.order_by(CacheEntryRow.created_at.desc()).limit(1))


def cache_put(session: Session | Connection, entries: Iterable[dict[str, Any]]) -> None:
    """Store memoized outputs (``key``, ``workflow_uid``, ``node_id``, ``outputs``,
    ``created_at``)."""
    rows = list(entries)
    if rows:
        _conn(session).execute(insert(CacheEntryRow.__table__), rows)


# -- stored templates --------------------------------------------------------------------

def put_template(session: Session, kind: str, name: str, namespace: str, spec: dict, now: float) -> None:
    """Create or replace a WorkflowTemplate / ClusterWorkflowTemplate."""
    row = session.scalar(select(TemplateRow).where(
        TemplateRow.kind == kind, TemplateRow.name == name, TemplateRow.namespace == namespace))
    if row is None:
        session.add(TemplateRow(kind=kind, name=name, namespace=namespace, spec=spec, created_at=now))
    else:
        row.spec = spec
    session.flush()


def get_template(session: Session, kind: str, name: str, namespace: str = "default") -> dict | None:
    """The stored resource of a template, or None."""
    q = select(TemplateRow.spec).where(TemplateRow.kind == kind, TemplateRow.name == name)
    if kind != "ClusterWorkflowTemplate":
        q = q.where(TemplateRow.namespace == namespace)
    return session.scalar(q)


def list_templates(session: Session) -> list[TemplateRow]:
    """Every stored template."""
    return list(session.scalars(select(TemplateRow).order_by(TemplateRow.kind, TemplateRow.name)))


def delete_template(session: Session, kind: str, name: str) -> bool:
    """Delete a stored template; whether it existed."""
    res = session.execute(delete(TemplateRow).where(TemplateRow.kind == kind, TemplateRow.name == name))
    return bool(res.rowcount)
