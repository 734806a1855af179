"""The controller: the only part of the engine that does IO.

One driver loop runs many workflows at once. Each turn it polls the running steps, feeds
their results to each run's :class:`~chute.engine.state.RunState`, fires timers, and then
**commits every decision before acting on it**: nodes about to be launched are written
as Running with their step directory in the same transaction that journals the
transition, and only then does the executor start them. The one exception is a step that
cannot outlive the controller (a reused worker's, ``executor.launch_ephemeral``): with
nothing of it to find after a crash, it is started while that commit is written, under a
lease that holds for a while still (:mod:`chute.engine.launches`). The controller never
runs user code: steps run under the executor's supervisors, which outlive it.

Leases (:mod:`chute.engine.leases`): a controller holds a lease on each workflow it runs
(owner id + expiry in the workflows row), renewed by a heartbeat thread that user code
cannot block. A controller that finds a workflow whose lease expired adopts it
(:mod:`chute.engine.adoption`): the run is rebuilt from the spec and the recorded nodes
(replay), re-attaching to running steps and taking the results of steps that finished
meanwhile. A standalone controller also holds the named lease ``controller``; a second
one refuses to start (R-4). The commit itself, fenced by the leases, is
:mod:`chute.engine.commit`; a pod's files, :mod:`chute.engine.step_io`.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from chute.config import Settings
from chute.engine import phases as P
from chute.engine.adoption import Adoption
from chute.engine.commit import LOST, commit_decisions
from chute.engine.crashpoints import after_flush, crash_point
from chute.engine.holds import HeldCommits
from chute.engine.launches import Launches
from chute.engine.leases import Leases
from chute.engine.pod import LaunchRequest, PodOutcome
from chute.engine.state import RunState
from chute.engine.step_io import outcome_of
from chute.errors import IncompatibleRunError, LeaseHeldError
from chute.executors import base as X
from chute.store import queries as q
from chute.store.db import Store

log = logging.getLogger("chute.engine")


def _owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Run:
    """One workflow this controller drives."""

    uid: str
    name: str
    state: RunState
    handles: dict[str, X.StepHandle] = field(default_factory=dict)
    requests: dict[str, LaunchRequest] = field(default_factory=dict)
    # ended attempts (node id, outcome, when) not yet fed to the state: they wait while
    # the state works through what a budgeted pass left, as they would behind one pass
    results: deque[tuple[str, PodOutcome, float]] = field(default_factory=deque)
    # where its pods' directories and logs go (strings: a Path per launch costs more)
    steps_root: str = ""
    logs_root: str = ""
    roots: tuple[Path, Path] | None = None  # the two as Paths (Launches._paths)
    # when our lease on it expires, as last committed (claim, a turn's commit, the
    # heartbeat): no other controller can claim it before then
    lease_until: float = 0.0


_heap_frozen = False


def freeze_heap() -> None:
    """Once per process, before a controller drives its first run: move the objects alive
    then (modules, settings, the store) out of the collector's reach. They live as long as
    the process, yet each full collection walked them again; a 10k-node run triggers
    several, a 1k-node run none, so they made the CPU per node grow with the run (D-5)."""
    global _heap_frozen
    if not _heap_frozen:
        _heap_frozen = True
        gc.freeze()


def store_lookup(store: Store) -> Callable[[str, str], dict | None]:
    """A template lookup over the store (WorkflowTemplate / ClusterWorkflowTemplate)."""
    def lookup(kind: str, name: str) -> dict | None:
        with store.read() as s:
            return q.get_template(s, kind, name)
    return lookup


class Controller(Adoption, Leases, Launches, HeldCommits):
    """Drives workflows through their node trees, persisting every transition."""

    def __init__(self, store: Store, settings: Settings, executor: X.Executor, *,
                 owner: str | None = None, lease_ttl: float = 15.0, poll_interval: float = 0.01,
                 max_running: int | None = None, clock: Callable[[], float] = time.time):
        self.store, self.settings, self.executor = store, settings, executor
        self.owner = owner or _owner_id()
        self.lease_ttl = lease_ttl
        self.poll_interval = poll_interval
        self.max_running = max_running or max(16, 8 * (os.cpu_count() or 2))
        self.clock = clock
        self.runs: dict[str, Run] = {}
        self.queue: deque[tuple[Run, LaunchRequest]] = deque()
        self.running = 0
        self.lost: set[str] = set()
        self._dropped: set[str] = set()  # runs given up (logged once)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heart: threading.Thread | None = None
        self.named_lease: str | None = None
        self.control_every = 0.5  # seconds between reads of suspend/stop requests
        # an executor that reports ended attempts (finished/wait) is polled for those only,
        # and for every attempt this often (ends it could not report: a killed supervisor)
        self.sweep_every = 0.1
        self.coalesce = min(poll_interval, 0.005)  # seconds to gather ends when saturated
        # how long attempts run (launch to end seen; a moving average): gathering ends
        # for longer than a fraction of it only leaves slots idle (see wait_idle)
        self.attempt_seconds: float | None = None
        # callbacks a run's state works through per turn: many tasks ready at once are
        # created, committed and launched a slice per turn, not all before the first
        self.turn_budget = 32
        self._last_sweep = 0.0
        self._log_dirs: set[str] = set()  # workflows whose log directory was made
        self._last_control = 0.0
        self._resumed: dict[str, float] = {}
        self.on_done: Callable[[Run], None] | None = None
        self._repo = None
        # runs this build cannot replay (recorded in another state format): left alone
        self.refused: dict[str, IncompatibleRunError] = {}
        self._init_holds()  # turns of reused-worker steps only, not committed yet

    @property
    def repository(self):
        """The default artifact repository (opened on first use)."""
        if self._repo is None:
            from chute.artifacts import ArtifactRepository

            self._repo = ArtifactRepository.from_settings(self.settings)
        return self._repo

    # -- the driver loop ---------------------------------------------------------------

    def turn(self) -> bool:
        """One pass: results, timers, launches, commits. Whether anything happened."""
        now = self.clock()
        busy: set[str] = set()
        if self.lost:  # (the heartbeat adds to it, under the lock: most turns find none)
            with self._lock:
                lost, self.lost = self.lost, set()
            for uid in lost:  # another controller took it over: stop acting on it
                self._drop(uid, LOST)
        if self.runs and time.monotonic() - self._last_control > self.control_every:
            self._apply_control()
        ended = self._ended()
        for run in list(self.runs.values()):
            for nid, handle in list(run.handles.items()):
                if ended is not None and handle.step_dir not in ended:
                    continue
                result = self.executor.poll(handle)
                if result is None:
                    continue
                del run.handles[nid]
                self.running -= 1  # its slot is free at once, even if the state is busy
                self._note_attempt(run, nid)
                outcome = outcome_of(self.store, self.repository, run, nid, result,
                                     self.clock())
                # read: not kept for the rest of the run (a 10k-node chain kept 10k, each
                # a handful of lists every full garbage collection walked again)
                run.requests.pop(nid, None)
                run.results.append((nid, outcome, self.clock()))
            if self._advance(run, now):
                busy.add(run.uid)
        flushed = self._flush(list(self.runs.values()))
        if flushed and hasattr(self.executor, "finished"):
            # an executor that reports ends wakes wait_idle at once for the next one: a
            # turn now would find nothing, unless the state or the queue still has work
            # (a chain paid that empty turn for every step)
            return self._more_now()
        return bool(busy) or flushed

    def _more_now(self) -> bool:
        """Whether the next turn has work without waiting for anything: a budgeted
        pass to go on with, results not yet fed, or queued pods with free slots."""
        if self.queue and self.running < self.max_running:
            return True
        return any(run.results or run.state.pending for run in self.runs.values())

    def _advance(self, run: Run, now: float) -> bool:
        """Feed the run's state: the rest of a budgeted pass first, then ended attempts
        one by one, then due timers, each only once the state has no work left (the
        order of one unbounded pass). Whether the state moved."""
        st, moved = run.state, False
        if st.pending:
            st.proceed()
            moved = True
        while run.results and not st.pending:
            nid, outcome, at = run.results.popleft()
            st.pod_finished(nid, outcome, at)
            moved = True
        if not st.pending and not run.results:
            nt = st.next_timer()
            if nt is not None and nt <= now:
                st.tick(now)
                moved = True
        return moved

    def _note_attempt(self, run: Run, nid: str) -> None:
        """Fold an ended attempt's run time (launched, by the node's start, to seen
        ended now) into :attr:`attempt_seconds`."""
        started = run.state.nodes[nid].started_at
        if started is None:
            return
        took = max(0.0, self.clock() - started)
        avg = self.attempt_seconds
        self.attempt_seconds = took if avg is None else 0.9 * avg + 0.1 * took

    def coalesce_seconds(self) -> float:
        """How long a saturated controller gathers ends before a turn: ``coalesce``, but
        at most a quarter of an attempt's usual run time. Gathering saves commits (one
        turn for several ends) while the slots it holds idle are a small part of their
        time; steps of a millisecond (reused workers) would idle most of theirs."""
        avg = self.attempt_seconds
        return self.coalesce if avg is None else min(self.coalesce, avg / 4)

    def _ended(self) -> set[Path] | None:
        """Step directories worth polling this turn; None for all of them."""
        finished = getattr(self.executor, "finished", None)
        if finished is None:
            return None
        if time.monotonic() - self._last_sweep >= self.sweep_every:
            self._last_sweep = time.monotonic()
            finished()  # every handle is polled now: the reports so far are covered
            return None
        return finished()

    def _apply_control(self) -> None:
        """Apply suspend / resume / stop / terminate requests written by the CLI."""
        self._last_control = time.monotonic()
        with self.store.read() as s:
            control = q.control_of(s, list(self.runs))
        for uid, (suspended, shutdown, resumed_at) in control.items():
            st = self.runs[uid].state
            if shutdown:
                st.request_shutdown(shutdown)
            fresh = bool(resumed_at and resumed_at > self._resumed.get(uid, 0.0))
            if suspended and not st.suspended:
                st.suspend()
            elif not suspended and st.suspended and not fresh:  # fresh: resumed with values
                st.resume()
            if fresh:
                self._resumed[uid] = resumed_at
                with self.store.read() as s:  # values `chute resume -p` supplied
                    values = q.find_workflow(s, uid).resume_values
                st.resume(values or None)
                crash_point("control.applied")

    def _flush(self, runs: Iterable[Run]) -> bool:
        """Commit the runs' decisions, then launch what may start."""
        runs = list(runs)
        for run in runs:
            self._collect(run)
        # start queued pods up to the controller's limit: mark Running (committed below)
        starting: list[tuple[Run, LaunchRequest]] = []
        now = self.clock()
        while self.queue and self.running < self.max_running:
            run, req = self.queue.popleft()
            if run.uid not in self.runs:
                continue
            if run.state.stopping:  # stopped while queued: never starts
                run.state.pod_finished(req.node_id, PodOutcome(
                    P.FAILED, None, run.state.stop_message or "stopped"), now)
                if run not in runs:
                    runs.append(run)
                continue
            run.state.mark_running(req.node_id, f"{run.steps_root}/{req.node_id}-{req.attempt}",
                                   now)
            self.running += 1
            starting.append((run, req))
            if run not in runs:
                runs.append(run)
        decisions = [(run, run.state.drain()) for run in runs]
        if not any(not d.empty() for _, d in decisions) and not starting and \
                self.held_for() != 0.0:  # (a hold whose time is up is committed now)
            return False
        crash_point("flush.before_commit")
        # steps that cannot outlive this process start now, while the commit recording
        # them is written (see _launch_early); the others once it is
        specs = self._launch_early(starting, now) if starting else {}
        if self._may_hold(decisions, starting, specs, now):  # (chute.engine.holds)
            self._hold(decisions, starting, specs)
            return True
        decisions, starting, specs = self._with_held(decisions, starting, specs)
        try:
            dropped = commit_decisions(self.store, self.owner, self.lease_ttl, decisions,
                                       starting, now)
        except BaseException:
            self._cancel_early(starting, specs, "the controller could not record its launch")
            raise
        if dropped:  # not ours any more (or a duplicate launch): no write, no launch
            for run, req in starting:  # their slots, but for a failed early launch's and
                spec, early = specs.get((run.uid, req.node_id), (None, False))  # an early
                if run.uid in dropped and (  # one's that ended (freed then)
                        not early or (spec is not None and req.node_id in run.handles)):
                    self.running -= 1
            self._cancel_early([(r, req) for r, req in starting if r.uid in dropped], specs,
                               "the controller no longer holds its workflow")
            decisions = [(r, d) for r, d in decisions if r.uid not in dropped]
            starting = [(r, req) for r, req in starting if r.uid not in dropped]
            for uid, why in dropped.items():
                self._drop(uid, why)
        until = now + self.lease_ttl  # the commit extended the leases of what it wrote
        for run, d in decisions:
            if not d.empty():
                run.lease_until = max(run.lease_until, until)
        for run, _ in starting:
            run.lease_until = max(run.lease_until, until)
        after_flush(decisions, starting)  # crash points: what this commit made durable
        # finished runs whose final state was just committed (a launch failing below
        # finishes its run only in the next turn's commit)
        done = [run for run, _ in decisions if run.state.done]
        for run, d in decisions:  # committed: now act on it
            for node in d.reattach:
                self._reattach(run, node)
            for node in d.cancels:
                handle = run.handles.get(node.id)
                if handle is not None:
                    self.executor.cancel(handle, node.message or "cancelled")
        for run, req in starting:
            spec, launched = specs.get((run.uid, req.node_id), (None, False))
            if not launched:
                self._launch(run, req, spec)
            elif spec is not None:  # launched early (None: it failed, its Error queued)
                self._record_lineage(run, req)
        for run in done:
            with self._lock:
                self.runs.pop(run.uid, None)
            if self.on_done:
                self.on_done(run)
        return True

    def close(self) -> None:
        """Commit what is held (:mod:`chute.engine.holds`), then stop the heartbeat and give
        up our leases (steps keep running)."""
        self.commit_held()
        super().close()

    def _drop(self, uid: str, why: str) -> None:
        """Stop driving run ``uid``: its steps keep running (handles forgotten, not
        killed) for the controller that owns it now, which re-attaches them."""
        with self._lock:
            run = self.runs.pop(uid, None)
        if run is None:
            return
        self._forget_held(uid)
        self.running -= len(run.handles)
        if uid not in self._dropped:  # once per run
            self._dropped.add(uid)
            log.warning("workflow %s (%s): no longer driven by this controller: %s",
                        run.name, uid, why)

    def _collect(self, run: Run) -> None:
        """Move the run's new launch requests to the controller's queue."""
        d = run.state
        for req in d._launches:
            run.requests[req.node_id] = req
            self.queue.append((run, req))
        d._launches = []

    # -- running -----------------------------------------------------------------------

    def wait_idle(self) -> None:
        """Sleep until the next thing may happen: a step ends (for an executor that
        reports it: at once), the next timer, or a poll interval."""
        running = sum(len(r.handles) for r in self.runs.values())
        wait = getattr(self.executor, "wait", None)
        held = self.held_for()  # never past the commit of what is held
        if wait is not None and running:
            delay = self.sweep_every if held is None else min(self.sweep_every, held)
            timers = [t for r in self.runs.values() if (t := r.state.next_timer()) is not None]
            if timers:
                delay = min(delay, min(timers) - self.clock())
            wait(max(0.0, delay))
            if self.queue and self.running >= self.max_running:
                # saturated: a slot refilled a little later changes little, and one turn
                # (one commit) for several ends costs much less than a turn for each. The
                # first end is in (or the wait timed out): gather those that follow it
                # (gathering before it, as this did, held nothing back but the wake-up)
                time.sleep(self.coalesce_seconds())
            return
        # few steps running: poll fast (latency of a chain); many: poll gently (CPU)
        delay = min(self.poll_interval, 0.002) if 0 < running <= 8 else self.poll_interval
        timers = [t for r in self.runs.values() if (t := r.state.next_timer()) is not None]
        if timers and not any(r.handles for r in self.runs.values()) and not self.queue:
            delay = max(self.poll_interval, min(1.0, min(timers) - self.clock()))
        time.sleep(max(0.0, delay if held is None else min(delay, held)))

    def run_until_done(self, uids: Iterable[str], timeout: float | None = None) -> None:
        """Drive the given workflows (adopting them) until they all finish."""
        uids = list(uids)
        freeze_heap()
        for uid in uids:
            if not self.adopt(uid):
                raise LeaseHeldError(f"workflow {uid} is held by another controller")
        self.start_heartbeat()
        end = None if timeout is None else time.monotonic() + timeout
        while any(u in self.runs for u in uids):
            # (a turn that finished the last of them has nothing to wait for: a wait then
            # slept a poll interval, 10 ms, at the end of every run)
            if not self.turn() and any(u in self.runs for u in uids):
                self.wait_idle()
            if end is not None and time.monotonic() > end:
                raise TimeoutError(f"workflows still running after {timeout}s")

    def serve(self, stop: threading.Event, claim_every: float = 1.0, *,
              exclusive: bool = True, claim_limit: int | None = None) -> None:
        """Run as the standalone controller until ``stop`` is set. ``exclusive=False``: a
        worker of ``chute controller --workers N``, whose parent holds the named lease."""
        freeze_heap()
        if exclusive:
            self.acquire_controller_lease()
        self.start_heartbeat()
        last = 0.0
        while not stop.is_set():
            if time.monotonic() - last > claim_every:
                self.claim_new(claim_limit)
                last = time.monotonic()
            if not self.turn():
                self.wait_idle()
