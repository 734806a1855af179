"""The controller's leases: a lease on each workflow it drives (owner id + expiry in the
workflows row), renewed by a heartbeat thread that user code cannot block, and for a
standalone controller the named lease ``controller`` (R-4). A run whose lease another
controller took is dropped at the next turn (fencing: :mod:`chute.engine.commit`).
"""

from __future__ import annotations

import threading

from chute.engine.crashpoints import crash_point
from chute.store import leases


class Leases:
    """The lease side of :class:`~chute.engine.controller.Controller` (a mixin over its
    ``store``, ``owner``, ``lease_ttl``, ``clock``, ``runs``, ``lost``, ``_lock``,
    ``_stop`` and ``_heart``)."""

    def acquire_controller_lease(self) -> None:
        """Become *the* standalone controller, or raise LeaseHeldError (R-4)."""
        with self.store.write() as s:
            leases.acquire_lease(s, "controller", self.owner, self.clock(), self.lease_ttl)
        self.named_lease = "controller"
        crash_point("serve.lease_acquired")

    def start_heartbeat(self) -> None:
        """Renew our leases from a thread of its own (a slow turn cannot lose them)."""
        if self._heart is not None:
            return
        self._heart = threading.Thread(target=self._heartbeat, name="chute-lease", daemon=True)
        self._heart.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.lease_ttl / 3):
            try:
                self.renew_leases()
            except Exception:  # noqa: BLE001 - a missed beat is retried; expiry is the guard
                pass

    def renew_leases(self) -> None:
        """Extend every lease we hold; runs whose lease was taken are dropped (fencing)."""
        with self._lock:
            uids = list(self.runs)
        now = self.clock()
        with self.store.write() as s:
            held = leases.renew_workflow_leases(s, self.owner, uids, now, self.lease_ttl)
            if self.named_lease and not leases.renew_lease(s, self.named_lease, self.owner, now,
                                                      self.lease_ttl):
                self.named_lease = None
        crash_point("lease.renewed")
        with self._lock:
            self.lost |= set(uids) - held
            for uid in held:
                run = self.runs.get(uid)
                if run is not None:
                    run.lease_until = max(run.lease_until, now + self.lease_ttl)

    def close(self) -> None:
        """Stop the heartbeat and give up our leases (steps keep running)."""
        self._stop.set()
        if self._heart is not None:
            self._heart.join(timeout=5)
        with self.store.write() as s:
            for uid in list(self.runs):
                leases.release_workflow_lease(s, uid, self.owner)
            if self.named_lease:
                leases.release_lease(s, self.named_lease, self.owner)
        crash_point("lease.released")
