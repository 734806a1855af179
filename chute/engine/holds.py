"""Held commits: a turn whose only effects are steps that die with the controller is
committed together with the turns that follow it, within a few milliseconds.

The controller commits a turn's decisions before it acts on them, except that a step which
cannot outlive it (a reused worker's) is started while that commit is written
(:meth:`~chute.engine.launches.Launches._launch_early`): a crash before the commit loses
the step, and the restarted controller runs it again (at-least-once). The same holds for
the end of such a step: until its end is committed, a crash runs it again. So a turn
whose decisions are only that (reused-worker steps ended, and their successors started
early) changes nothing a restarted controller would see differently if its commit waited
a little: such a turn is *held*, merged with the next ones, and committed with the first
that is not of that kind, once :attr:`HeldCommits.hold_seconds` passed since the first
held one (a wait never sleeps past that), or once :data:`HOLD_STEPS` steps were started
under the hold. A chain of millisecond steps then pays one commit (~0.3 ms of CPU: a
transaction, a dozen WAL pages) every few steps, not one per step.

What a crash costs is unchanged in kind: the steps ended or started under the hold run
again, each at most once per crash (the crash-point test R-2 checks it), and none of them
had a success recorded (no duplicate success record). Everything else commits at once: a
step of any other kind, a cancel or a re-attach, a cache write, a workflow-level change
(its phase, its end), a failed early launch.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from chute.engine.commit import commit_decisions
from chute.engine.crashpoints import crash_point
from chute.engine.pod import LaunchRequest
from chute.engine.state import Decisions

if TYPE_CHECKING:
    from chute.engine.controller import Run
    from chute.executors import base as X

HOLD_STEPS = 16  # steps started under one hold, at most
log = logging.getLogger("chute.engine")

Specs = dict[tuple[str, str], tuple["X.LaunchSpec | None", bool]]


class HeldCommits:
    """The held-commit side of :class:`~chute.engine.controller.Controller` (a mixin over
    its ``store``, ``owner``, ``lease_ttl``, ``clock`` and ``_record_lineage``).
    ``hold_seconds`` 0 turns holding off."""

    hold_seconds = 0.002
    _held: dict[str, tuple[Run, Decisions]]
    _held_starting: list[tuple[Run, LaunchRequest]]
    _held_specs: Specs
    _held_since: float | None = None

    def _init_holds(self) -> None:
        self._held, self._held_starting, self._held_specs = {}, [], {}
        self._held_since = None

    def _may_hold(self, decisions: list[tuple[Run, Decisions]],
                  starting: list[tuple[Run, LaunchRequest]], specs: Specs, now: float) -> bool:
        """Whether this turn's commit may wait (see the module docstring)."""
        if self.hold_seconds <= 0 or not starting:
            return False
        if self._held_since is not None and (
                time.monotonic() - self._held_since >= self.hold_seconds
                or len(self._held_starting) + len(starting) > HOLD_STEPS):
            return False
        for run, req in starting:
            spec, launched = specs.get((run.uid, req.node_id), (None, False))
            if spec is None or not launched:  # committed first, or its launch failed
                return False
        margin = self.lease_ttl / 3  # (as for an early launch: nobody else can claim it)
        for run, d in decisions:
            if (d.reattach or d.cancels or d.cache_writes or d.workflow or run.state.done
                    or now >= run.lease_until - margin):
                return False
        return True

    def _hold(self, decisions: list[tuple[Run, Decisions]],
              starting: list[tuple[Run, LaunchRequest]], specs: Specs) -> None:
        """Keep this turn's decisions for the next commit."""
        for run, d in decisions:
            held = self._held.get(run.uid)
            self._held[run.uid] = (run, d if held is None else merge(held[1], d))
        self._held_starting.extend(starting)
        self._held_specs.update(specs)
        if self._held_since is None:
            self._held_since = time.monotonic()
        crash_point("flush.held")

    def _with_held(self, decisions: list[tuple[Run, Decisions]],
                   starting: list[tuple[Run, LaunchRequest]], specs: Specs):
        """This turn's decisions with those held before them (which are then no longer
        held): (decisions, starting, specs) to commit."""
        if self._held_since is None:
            return decisions, starting, specs
        merged = dict(self._held)
        for run, d in decisions:
            held = merged.get(run.uid)
            merged[run.uid] = (run, d if held is None else merge(held[1], d))
        starting = self._held_starting + starting
        specs = {**self._held_specs, **specs}
        self._init_holds()
        return list(merged.values()), starting, specs

    def _forget_held(self, uid: str) -> None:
        """Let go of what is held of run ``uid``, which is no longer ours (its lease was
        taken): never to be committed by us, its slots freed with the run's."""
        if self._held_since is None:
            return
        self._held.pop(uid, None)
        self._held_starting = [(r, req) for r, req in self._held_starting if r.uid != uid]
        self._held_specs = {k: v for k, v in self._held_specs.items() if k[0] != uid}
        if not self._held and not self._held_starting:
            self._init_holds()

    def commit_held(self) -> None:
        """Commit what is held now (the controller closing); if that fails, its steps run
        again when the run is adopted, as after a crash."""
        if self._held_since is None:
            return
        decisions, starting, specs = self._with_held([], [], {})
        try:
            commit_decisions(self.store, self.owner, self.lease_ttl, decisions, starting,
                             self.clock())
        except Exception as exc:  # noqa: BLE001 - as after a crash (see above)
            log.warning("held decisions not committed at close: %s", exc)
            return
        for run, req in starting:
            if specs.get((run.uid, req.node_id), (None, False))[0] is not None:
                self._record_lineage(run, req)

    def held_for(self) -> float | None:
        """Seconds until the held decisions must be committed (None: nothing held)."""
        if self._held_since is None:
            return None
        return max(0.0, self._held_since + self.hold_seconds - time.monotonic())


def merge(first: Decisions, then: Decisions) -> Decisions:
    """Two turns' decisions of one run as one commit's. Nodes are written from the node
    objects as they are at the commit, so each node once: new if it was new in either."""
    new = {n.id: n for n in first.new_nodes}
    for n in then.new_nodes:
        new.setdefault(n.id, n)
    changed = {n.id: n for n in (*first.changed_nodes, *then.changed_nodes) if n.id not in new}
    return Decisions(
        new_nodes=list(new.values()), changed_nodes=list(changed.values()),
        events=first.events + then.events, launches=first.launches + then.launches,
        reattach=first.reattach + then.reattach, cancels=first.cancels + then.cancels,
        cache_writes=first.cache_writes + then.cache_writes,
        workflow={**(first.workflow or {}), **(then.workflow or {})} or None)
