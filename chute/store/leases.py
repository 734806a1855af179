"""Leases in the store: which controller may drive a workflow, and the launch records
that keep two controllers from launching the same attempt.

A controller holds a lease on each workflow it runs (owner and expiry in the workflow's
row: claimed, renewed by a heartbeat, checked and extended at each commit, released), and
a standalone controller the named lease ``controller`` (the ``leases`` table, R-4). Every
launch is recorded in ``step_executions`` under a unique (workflow, node, attempt), so a
second launch of an attempt cannot commit. The functions are those of
:mod:`chute.store.queries` (session first, never committing), apart from them because they
coordinate controllers (:mod:`chute.engine.leases`, :mod:`chute.engine.commit`, the
worker mode of ``chute controller``) rather than read or write what a run holds.
"""

from __future__ import annotations

import functools
import os
import socket
import sqlite3
from collections.abc import Iterable, Sequence

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from chute.errors import LeaseHeldError
from chute.store.models import LeaseRow, StepExecutionRow, WorkflowRow
from chute.store.queries import _conn, _run, _sqlite

ACTIVE_PHASES = ("Pending", "Running")


# -- workflow leases ---------------------------------------------------------------------

def claim_workflow(session: Session, uid: str, owner: str, now: float, ttl: float) -> bool:
    """Take the lease of an active workflow if it is free, expired or ours; whether we hold it."""
    res = session.execute(
        update(WorkflowRow)
        .where(WorkflowRow.uid == uid, WorkflowRow.phase.in_(ACTIVE_PHASES),
               or_(WorkflowRow.lease_owner.is_(None), WorkflowRow.lease_owner == owner,
                   WorkflowRow.lease_expires_at < now))
        .values(lease_owner=owner, lease_expires_at=now + ttl)
    )
    return bool(res.rowcount)


def claim_workflows(session: Session, owner: str, now: float, ttl: float,
                    limit: int | None = None, exclude: Sequence[str] = ()) -> list[str]:
    """Take the leases of up to ``limit`` active workflows nobody holds, oldest first; the
    uids taken. On PostgreSQL the candidates are locked with ``FOR UPDATE SKIP LOCKED``,
    so controller workers claiming at once split the work instead of queueing on the same
    rows; on SQLite the write transaction (``BEGIN IMMEDIATE``) already serialises claims."""
    q = (select(WorkflowRow.uid)
         .where(WorkflowRow.phase.in_(ACTIVE_PHASES),
                or_(WorkflowRow.lease_owner.is_(None), WorkflowRow.lease_expires_at < now))
         .order_by(WorkflowRow.created_at))
    if exclude:  # runs this controller refused to adopt
        q = q.where(WorkflowRow.uid.not_in(list(exclude)))
    if limit:
        q = q.limit(limit)
    if _conn(session).dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    uids = list(session.scalars(q))
    if uids:
        session.execute(update(WorkflowRow).where(WorkflowRow.uid.in_(uids))
                        .values(lease_owner=owner, lease_expires_at=now + ttl))
    return uids


def claimable_workflows(session: Session, now: float) -> list[str]:
    """Uids of active workflows nobody holds (lease free or expired), oldest first."""
    q = (select(WorkflowRow.uid)
         .where(WorkflowRow.phase.in_(ACTIVE_PHASES),
                or_(WorkflowRow.lease_owner.is_(None), WorkflowRow.lease_expires_at < now))
         .order_by(WorkflowRow.created_at))
    return list(session.scalars(q))


def renew_workflow_leases(session: Session, owner: str, uids: Sequence[str], now: float, ttl: float) -> set[str]:
    """Extend our leases on ``uids``; returns the uids we still hold (fencing)."""
    if not uids:
        return set()
    session.execute(
        update(WorkflowRow)
        .where(WorkflowRow.uid.in_(list(uids)), WorkflowRow.lease_owner == owner)
        .values(lease_expires_at=now + ttl)
    )
    held = session.scalars(select(WorkflowRow.uid).where(
        WorkflowRow.uid.in_(list(uids)), WorkflowRow.lease_owner == owner))
    return set(held)


def fence_workflows(session: Session | Connection, owner: str, uids: Sequence[str],
                    now: float, ttl: float) -> set[str]:
    """Inside a write transaction: which of ``uids`` we still hold (their leases are
    extended when half their time has passed). The rows stay locked until the transaction
    ends (``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so no
    claim can take one of them between this check and the commit of the writes that
    follow it (lease fencing)."""
    if not uids:
        return set()
    conn = _conn(session)
    raw = _sqlite(conn)
    uids = list(uids)
    if raw is not None:
        # BEGIN IMMEDIATE holds every other writer off until the commit: reading the
        # owner is the fence. SQL made here, not by SQLAlchemy: this runs every turn
        # from the index alone (ix_workflows_lease): the row would be read through its
        # spec's overflow pages, a cost growing with the spec (D-5)
        rows = raw.execute(_fence_sql(len(uids)), [owner, *uids]).fetchall()
    else:  # the row locks keep a claim (an UPDATE, or FOR UPDATE SKIP LOCKED) out
        t = WorkflowRow.__table__
        rows = conn.execute(select(t.c.uid, t.c.lease_expires_at)
                            .where(t.c.uid.in_(uids), t.c.lease_owner == owner)
                            .with_for_update()).all()
    held = {uid for uid, _ in rows}
    # Extend only leases past half their time (the heartbeat renews them too). Not on
    # every commit: an UPDATE rewrites the whole row, spec included, on SQLite, so a
    # per-turn renewal made each turn's cost grow with the size of the workflow (D-5)
    stale = [uid for uid, expires in rows if expires is None or expires < now + ttl / 2]
    if stale:
        t = WorkflowRow.__table__
        conn.execute(update(t).where(t.c.uid.in_(stale), t.c.lease_owner == owner)
                     .values(lease_expires_at=now + ttl))
    return held


@functools.lru_cache(maxsize=64)
def _fence_sql(n: int) -> str:
    """:func:`fence_workflows`'s SELECT on SQLite for ``n`` uids (made once per count)."""
    return ("SELECT uid, lease_expires_at FROM workflows INDEXED BY ix_workflows_lease "
            f"WHERE lease_owner = ? AND uid IN ({', '.join('?' * n)})")


def release_workflow_lease(session: Session, uid: str, owner: str) -> None:
    """Give up our lease on a workflow."""
    session.execute(update(WorkflowRow)
                    .where(WorkflowRow.uid == uid, WorkflowRow.lease_owner == owner)
                    .values(lease_owner=None, lease_expires_at=None))


# -- launch records ----------------------------------------------------------------------

_SQLITE_INSERT_LAUNCHES = ("INSERT INTO step_executions (workflow_uid, node_id, attempt, owner, "
                           "launched_at) VALUES (?, ?, ?, ?, ?)")


def record_launches(session: Session | Connection, owner: str,
                    attempts: Iterable[tuple[str, str, int]], now: float) -> None:
    """Record pod attempts about to be launched, ``(workflow_uid, node_id, attempt)``; an
    attempt recorded already (another worker launched it) raises IntegrityError, and
    nothing of the transaction commits."""
    attempts = list(attempts)
    if not attempts:
        return
    conn = _conn(session)
    raw = _sqlite(conn)
    if raw is not None:  # every launch goes through here: the sqlite3 fast path
        rows = [(u, n, a, owner, now) for u, n, a in attempts]
        try:
            _run(raw, _SQLITE_INSERT_LAUNCHES, rows)
        except sqlite3.IntegrityError as exc:  # as SQLAlchemy raises it (the caller's catch)
            raise IntegrityError(_SQLITE_INSERT_LAUNCHES, rows, exc) from exc
        return
    conn.execute(insert(StepExecutionRow.__table__),
                 [{"workflow_uid": u, "node_id": n, "attempt": a, "owner": owner,
                   "launched_at": now} for u, n, a in attempts])


def launched_attempts(session: Session, attempts: Iterable[tuple[str, str, int]]
                      ) -> set[tuple[str, str, int]]:
    """Which of the ``(workflow_uid, node_id, attempt)`` were launched already."""
    wanted = set(attempts)
    if not wanted:
        return set()
    rows = session.execute(select(StepExecutionRow.workflow_uid, StepExecutionRow.node_id,
                                  StepExecutionRow.attempt)
                           .where(StepExecutionRow.workflow_uid.in_({u for u, _, _ in wanted})))
    return {tuple(r) for r in rows} & wanted


# -- named leases (the single standalone controller) --------------------------------------

def acquire_lease(session: Session, name: str, owner: str, now: float, ttl: float) -> None:
    """Take the named lease or raise LeaseHeldError naming the live holder (R-4)."""
    row = session.get(LeaseRow, name)
    if row is not None and row.owner != owner and row.expires_at >= now:
        raise LeaseHeldError(f"lease held by pid {row.pid} on {row.host} (owner {row.owner})")
    values = dict(owner=owner, pid=os.getpid(), host=socket.gethostname(), expires_at=now + ttl)
    if row is None:
        session.add(LeaseRow(name=name, **values))
    else:
        for k, v in values.items():
            setattr(row, k, v)
    session.flush()


def lease_holder(session: Session, name: str, now: float) -> LeaseRow | None:
    """The live holder of a named lease, or None."""
    row = session.get(LeaseRow, name)
    return row if row is not None and row.expires_at >= now else None


def renew_lease(session: Session, name: str, owner: str, now: float, ttl: float) -> bool:
    """Extend a named lease we hold; False if someone else took it."""
    res = session.execute(update(LeaseRow).where(LeaseRow.name == name, LeaseRow.owner == owner)
                          .values(expires_at=now + ttl))
    return bool(res.rowcount)


def release_lease(session: Session, name: str, owner: str) -> None:
    """Drop a named lease we hold."""
    session.execute(delete(LeaseRow).where(LeaseRow.name == name, LeaseRow.owner == owner))
