"""The controller's per-turn commit: every decision of its runs written in one
transaction before anything is acted on, fenced by the runs' leases.

Fencing: inside that transaction the controller extends its lease on each run it writes
(``UPDATE workflows ... WHERE lease_owner = me``, whose row locks on PostgreSQL, and
``BEGIN IMMEDIATE`` on SQLite, keep a claim out until the commit); a run whose lease was
taken over meanwhile is left out, neither written nor launched. A launch that duplicates
an attempt recorded already (unique ``step_executions (workflow_uid, node_id, attempt)``)
rolls the transaction back; it is retried without that run, whose lease is given back so
that a replay picks it up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError

from chute.engine.pod import LaunchRequest
from chute.store import leases
from chute.store import queries as q
from chute.store.db import Store

if TYPE_CHECKING:
    from chute.engine.controller import Run

LOST = "its lease was taken over by another controller"
DUPLICATE = "an attempt it was launching was launched already"


def commit_decisions(store: Store, owner: str, ttl: float, decisions: list[tuple[Run, Any]],
                     starting: list[tuple[Run, LaunchRequest]], now: float) -> dict[str, str]:
    """Write the decisions and record the launches of the runs ``owner`` still holds; the
    runs left out (uid -> why), which the caller must drop."""
    written = {r.uid for r, d in decisions if not d.empty()} | {r.uid for r, _ in starting}
    dropped: dict[str, str] = {}
    while True:
        try:
            with store.write_conn() as s:
                held = leases.fence_workflows(s, owner, sorted(written - set(dropped)), now, ttl)
                for uid in written - set(dropped) - held:
                    dropped[uid] = LOST
                write_decisions(s, owner, [(r, d) for r, d in decisions if r.uid not in dropped],
                                [(r, req) for r, req in starting if r.uid not in dropped], now)
            return dropped
        except IntegrityError:
            attempts = [(r.uid, req.node_id, req.attempt) for r, req in starting
                        if r.uid not in dropped]
            with store.read() as s:
                dup = {u for u, _, _ in leases.launched_attempts(s, attempts)}
            # a conflict we cannot pin on a launch: leave all the runs to a replay
            bad = dup or (written - set(dropped))
            for uid in bad:
                dropped[uid] = DUPLICATE
            with store.write() as s:  # ours still: given back, re-adopted by replay
                for uid in bad:
                    leases.release_workflow_lease(s, uid, owner)


def write_decisions(s, owner: str, decisions: list[tuple[Run, Any]],
                    starting: list[tuple[Run, LaunchRequest]], now: float) -> None:
    """The writes of one commit, in the caller's transaction ``s``."""
    # unique (run, node, attempt): a second launch of an attempt cannot commit
    leases.record_launches(s, owner, [(r.uid, req.node_id, req.attempt) for r, req in starting],
                      now)
    for run, d in decisions:
        q.write_node_objects(s, run.uid, d.new_nodes, d.changed_nodes)
        q.record_events(s, d.events)
        q.cache_put(s, d.cache_writes)
        if d.workflow:
            values = dict(d.workflow)
            if run.state.done:  # its final state: the lease goes with it
                values.update(lease_owner=None, lease_expires_at=None)
            q.update_workflow(s, run.uid, **values)
