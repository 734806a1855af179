"""The controller's adoption: a workflow claimed (its lease taken; a batch of them in one
transaction) and rebuilt from its spec and its recorded nodes, to be driven on from where
it was. The rebuilt state replays: steps that finished keep their results, running ones
are re-attached, a suspend or stop requested meanwhile holds. A run recorded in a state
format this build cannot replay is refused by name and left untouched.

Separate from the driver loop (:mod:`chute.engine.controller`): it runs once per workflow,
when a controller starts driving it (a new submission, or a run whose controller died).
"""

from __future__ import annotations

import logging

from chute.engine import phases as P
from chute.engine.crashpoints import crash_point
from chute.engine.nodes import Node
from chute.engine.plan import build_plan
from chute.engine.state import RunState
from chute.engine.state_format import check_replayable
from chute.errors import ChuteError, IncompatibleRunError
from chute.store import leases
from chute.store import queries as q

log = logging.getLogger("chute.engine")


class Adoption:
    """The adoption side of :class:`~chute.engine.controller.Controller` (a mixin over its
    ``store``, ``settings``, ``owner``, ``lease_ttl``, ``clock``, ``runs``, ``refused``,
    ``turn_budget``, ``_lock``, ``_resumed`` and ``_flush``)."""

    def adopt(self, uid: str) -> bool:
        """Take the lease of workflow ``uid`` and start (or resume) driving it. A run
        recorded in a state format this build cannot replay raises IncompatibleRunError
        and is left untouched (not even its lease is taken)."""
        if uid in self.runs:
            return True
        now = self.clock()
        with self.store.write() as s:
            if not leases.claim_workflow(s, uid, self.owner, now, self.lease_ttl):
                return False
            row = q.find_workflow(s, uid)
            assert row is not None
            check_replayable(row.name, row.state_format)  # raising rolls the claim back
            spec, args, created, name = row.spec, dict(row.arguments or {}), row.created_at, row.name
            recorded = {r.node_id: Node.from_row(q.node_dict(r)) for r in q.nodes_of(s, uid)}
            resumed = row.phase == P.WF_RUNNING
            suspended, shutdown = row.suspended, row.shutdown
            self._resumed[uid] = row.resumed_at or 0.0
            resume_values = row.resume_values
            generation = q.completions(s, uid)  # earlier runs of it (before `chute retry`)
        crash_point("adopt.claimed")
        # (controller.py imports this module: its names are imported when first used)
        from chute.engine.controller import Run, store_lookup

        try:
            plan = build_plan(spec, uid=uid, created_at=created, overrides=args,
                              lookup=store_lookup(self.store),
                              steps_root=self.settings.steps_dir / uid,
                              logs_root=self.settings.logs_dir / uid)
        except ChuteError as exc:
            with self.store.write() as s:
                q.update_workflow(s, uid, phase=P.WF_ERROR, message=str(exc), finished_at=now,
                                  lease_owner=None, lease_expires_at=None)
            return False
        state = RunState(plan, now=now, recorded=recorded, cache=self._cache_lookup,
                         generation=generation)
        state.budget = self.turn_budget
        state.restore_control(suspended=suspended, shutdown=shutdown)
        if resumed:
            state.started_at = None
        run = Run(uid=uid, name=name, state=state, steps_root=str(self.settings.steps_dir / uid),
                  logs_root=str(self.settings.logs_dir / uid), lease_until=now + self.lease_ttl)
        with self._lock:
            self.runs[uid] = run
        state.start()
        if resumed:
            state._wf_update.pop("started_at", None)
        if self._resumed[uid]:  # a resume no controller was running to apply
            state.resume_suspends_before(self._resumed[uid], resume_values or None)
        self._flush([run])
        return True

    def _cache_lookup(self, name: str, key: str, max_age: float | None) -> dict | None:
        """Memoized outputs for ``memoize`` (a read-only query the state may make)."""
        not_before = self.clock() - max_age if max_age is not None else None
        with self.store.read() as s:
            return q.cache_get(s, f"{name}/{key}", not_before)

    def claim_new(self, limit: int | None = None) -> list[str]:
        """Adopt active workflows nobody holds (at most ``limit``); the uids adopted. The
        leases are taken in one transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so
        controller workers claiming at once never take the same workflow. A run this build
        cannot replay is refused by name (logged once, kept in ``refused``, its lease given
        back) and the others go on."""
        with self.store.read() as s:  # most passes find nothing: take no write lock then
            if not set(leases.claimable_workflows(s, self.clock())) - set(self.refused):
                return []
        with self.store.write() as s:
            uids = leases.claim_workflows(s, self.owner, self.clock(), self.lease_ttl, limit,
                                     exclude=list(self.refused))
        if uids:
            crash_point("serve.claimed")
        adopted = []
        for uid in uids:
            try:
                if self.adopt(uid):
                    adopted.append(uid)
            except IncompatibleRunError as exc:
                self.refused[uid] = exc
                log.error("not adopting: %s", exc)
                with self.store.write() as s:
                    leases.release_workflow_lease(s, uid, self.owner)
        return adopted
