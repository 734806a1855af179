"""The controller's launches: a committed pod's launch spec (its inputs placed, its
secrets read) handed to the executor, and a pod re-attached after adoption. A step that
cannot outlive the controller (a reused worker's) is launched while the commit recording
it is written (:meth:`Launches._launch_early`); every other step once it is committed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from chute.engine import phases as P
from chute.engine.crashpoints import crash_point
from chute.engine.lineage import record_consumers
from chute.engine.nodes import Node
from chute.engine.pod import LaunchRequest, PodOutcome
from chute.engine.secrets_env import resolve_env
from chute.engine.step_io import place_inputs
from chute.errors import ChuteError
from chute.executors import base as X

if TYPE_CHECKING:
    from chute.engine.controller import Run


# CPython < 3.12 keeps a path's parsed parts: a child made from them skips the parse
# (``/`` parses the name, through half a dozen calls, ~25 us a step with cold caches)
_PARTS = sys.version_info < (3, 12) and hasattr(Path, "_from_parsed_parts") and isinstance(
    getattr(Path("/a"), "_parts", None), list)


def child_path(parent: Path, name: str) -> Path:
    """``parent / name``, for a plain name (no separator, not ``.`` or ``..``) made
    without parsing where the running Python allows it."""
    if _PARTS and "/" not in name and name not in ("", ".", ".."):
        return parent._from_parsed_parts(  # type: ignore[attr-defined]
            parent._drv, parent._root, [*parent._parts, name])  # type: ignore[attr-defined]
    return parent / name


class Launches:
    """The launch side of :class:`~chute.engine.controller.Controller` (a mixin over its
    ``executor``, ``store``, ``settings``, ``repository``, ``clock``, ``lease_ttl``,
    ``running``, ``queue`` and ``_log_dirs``)."""

    def _launch_early(self, starting: list[tuple[Run, LaunchRequest]],
                      now: float) -> dict[tuple[str, str], tuple[X.LaunchSpec | None, bool]]:
        """Start, before the commit that records them Running, the starting pods whose
        step cannot outlive this process (``executor.launch_ephemeral``: a reused
        worker's, which dies with its controller). Recording first protects what survives
        a controller crash, which such a step does not: a crash before the commit loses
        it, as a crash just after would, and the restarted controller runs it again
        (at-least-once); the commit's own time then overlaps the step's instead of
        preceding it (a chain of short steps waits on each commit otherwise). Only for a
        run whose lease, as last committed, holds for a third of its time still: no
        other controller can have claimed it, so none launches these pods (the commit
        fences it all the same, and what it finds was not ours is cancelled).

        (run uid, node id) -> (spec, launched): launched early, or (None, True) if that
        failed (the node's Error queued); (spec, False): made here, launched once the
        commit is written."""
        launch = getattr(self.executor, "launch_ephemeral", None)
        early: dict[tuple[str, str], tuple[X.LaunchSpec | None, bool]] = {}
        if launch is None:
            return early
        margin = self.lease_ttl / 3
        for run, req in starting:
            if now >= run.lease_until - margin:
                continue
            key = (run.uid, req.node_id)
            spec = self._spec(run, req)
            if spec is None or not self._start(run, req, spec, launch):
                early[key] = (None, True)  # an Error: never launched
            elif req.node_id in run.handles:
                early[key] = (spec, True)
                crash_point("flush.launched_early")
            else:  # it would outlive us: launched once committed
                early[key] = (spec, False)
        return early

    def _cancel_early(self, starting: list[tuple[Run, LaunchRequest]],
                      early: dict[tuple[str, str], tuple[X.LaunchSpec | None, bool]],
                      why: str) -> None:
        """Stop the steps :meth:`_launch_early` started whose launch was not recorded."""
        for run, req in starting:
            spec, launched = early.get((run.uid, req.node_id), (None, False))
            if launched and spec is not None:
                handle = run.handles.pop(req.node_id, None)
                if handle is not None:
                    self.executor.cancel(handle, why)

    def _spec(self, run: Run, req: LaunchRequest) -> X.LaunchSpec | None:
        """The executor's launch spec for a pod: its inputs placed, its secrets read. None
        if that failed: the node's Error is queued and its slot freed."""
        node = run.state.nodes[req.node_id]
        try:
            input_files = place_inputs(node, self.repository)
            secret_env, masked = (resolve_env(req.secret_env, self.settings.secrets_dir)
                                  if req.secret_env else ({}, []))
        except Exception as exc:  # noqa: BLE001 - a missing input is the node's Error
            self.running -= 1
            run.results.append((req.node_id, PodOutcome(P.ERROR, None, str(exc)), self.clock()))
            return None
        step_dir, log_path = self._paths(run, node.step_dir or "", req)
        return X.LaunchSpec(
            workflow_uid=run.uid, node_id=req.node_id, attempt=req.attempt,
            step_dir=step_dir, log_path=log_path,
            # the request's own lists, not copies (shared by a template's requests, the
            # launch cache's, and never changed)
            argv=req.argv, env={**req.env, **secret_env} if secret_env else req.env,
            working_dir=req.working_dir, script_source=req.script_source,
            deadline=(self.clock() + req.deadline_seconds) if req.deadline_seconds else None,
            private_paths=[], output_paths=req.output_paths, input_files=input_files,
            secret_values=masked, volume_mounts=req.volume_mounts,
        )

    @staticmethod
    def _paths(run: Run, step_dir: str, req: LaunchRequest) -> tuple[Path, Path]:
        """The pod's step directory and log file as Paths. Each is its run's directory
        (parsed once per run) joined with a name, when it is one: ``Path()`` of the whole
        string parses every part of it again, for each step (most of a launch spec's
        cost; ``/`` parses only the name)."""
        if run.roots is None:
            run.roots = (Path(run.steps_root), Path(run.logs_root))
        steps, logs = run.roots
        leaf = f"{req.node_id}-{req.attempt}"
        sd = (child_path(steps, leaf) if run.steps_root and step_dir == f"{run.steps_root}/{leaf}"
              else Path(step_dir))
        log = (child_path(logs, f"{req.node_id}.log") if run.logs_root
               else Path(f"{run.logs_root}/{req.node_id}.log"))
        return sd, log

    def _record_lineage(self, run: Run, req: LaunchRequest) -> None:
        """The artifacts the pod consumes, in the store (never raises)."""
        if record_consumers(self.store, run.uid, run.state.nodes[req.node_id]):
            crash_point("launch.lineage_recorded")

    def _launch(self, run: Run, req: LaunchRequest, spec: X.LaunchSpec | None = None) -> None:
        """Launch a pod recorded Running (``spec``: made already by _launch_early)."""
        spec = spec or self._spec(run, req)
        if spec is None:
            return
        self._record_lineage(run, req)
        if self._start(run, req, spec, self.executor.launch):
            crash_point("launch.spawned")

    def _start(self, run: Run, req: LaunchRequest, spec: X.LaunchSpec, launch) -> bool:
        """``launch(spec)``; its handle (if any) kept in the run. False if it raised: the
        node's Error is queued and its slot freed."""
        try:
            if run.uid not in self._log_dirs:  # one mkdir per workflow, not per step
                spec.log_path.parent.mkdir(parents=True, exist_ok=True)
                self._log_dirs.add(run.uid)
            if not spec.argv:
                raise ChuteError("the template has no command (and its image's default "
                                 "command is unknown locally)")
            handle = launch(spec)
        except Exception as exc:  # noqa: BLE001 - a launch failure is the node's Error
            self.running -= 1
            run.results.append((req.node_id, PodOutcome(P.ERROR, None, f"launch failed: {exc}"),
                                self.clock()))
            return False
        if handle is not None:
            run.handles[req.node_id] = handle
        return True

    def _reattach(self, run: Run, node: Node) -> None:
        handle = self.executor.reattach(Path(node.step_dir or ""))
        self.running += 1
        if handle is None:  # never started: safe to launch again
            req = run.state.relaunch(node.id)
            if req is not None:
                self.running -= 1
                run.requests[node.id] = req
                self.queue.appendleft((run, req))
            return
        run.handles[node.id] = handle
        run.requests[node.id] = run.state.request_for(node.id)  # its outputs to collect
