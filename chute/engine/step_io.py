"""A pod's files, on the controller's side: the input artifacts placed in its step
directory before it is launched, and after it ended, its output parameter files read and
its output artifacts stored (with their rows, metrics and lineage), making the
:class:`~chute.engine.pod.PodOutcome` the run's state is fed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from chute.engine import phases as P
from chute.engine.crashpoints import crash_point
from chute.engine.metrics_store import record_metrics
from chute.engine.nodes import Node
from chute.engine.pod import PodOutcome
from chute.engine.secrets_env import after_attempt
from chute.errors import ChuteError
from chute.executors import base as X
from chute.store import queries as q
from chute.store.db import Store

if TYPE_CHECKING:
    from chute.engine.controller import Run

MAX_OUTPUT_BYTES = 1 << 20  # an output parameter file larger than this is an error


def place_inputs(node: Node, repository) -> dict[str, str]:
    """Fetch a pod's input artifacts into its step directory; step path -> host path."""
    arts = (node.inputs or {}).get("artifacts")
    if not arts:  # most steps: no import statement per launch either
        return {}
    from chute.artifacts import ArtifactRecord, place_input

    placed: dict[str, str] = {}
    for i, art in enumerate(arts):
        name, path = art.get("name"), art.get("path")
        if not path:
            continue
        record = None
        src = art.get("from")
        if src:
            try:
                record = ArtifactRecord.from_dict(json.loads(src))
            except (ValueError, TypeError):
                if art.get("optional"):
                    continue
                raise ChuteError(f"inputs.artifacts.{name}: {src} was not produced") from None
        spec = {k: v for k, v in art.items() if k not in ("from", "fromExpression")}
        dest = Path(node.step_dir or "") / "inputs" / f"{i}-{name}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        rec = place_input(spec, dest, repository=repository, record=record,
                          where=f"inputs.artifacts[{i}]")
        if rec is not None:
            placed[path] = str(dest)
    return placed


def save_outputs(store: Store, repository, run: Run, nid: str, result: X.StepResult,
                 now: float) -> list[dict]:
    """Store a pod's output artifacts; their records, in Argo's shape plus ours."""
    req = run.requests.get(nid)
    arts = req.output_artifacts if req else []
    if not arts:
        return []
    from chute.artifacts import save_outputs as save
    from chute.store.models import ArtifactRow

    node = run.state.nodes[nid]
    records = save(repository, arts, result.outputs or {}, workflow_uid=run.uid, node_id=nid,
                   root=Path(node.step_dir or "") / "root")
    out, rows = [], []
    for art in arts:
        rec = records.get(art["name"])
        if rec is None:
            continue
        out.append({**rec.to_dict(), "name": art["name"], "path": art["path"],
                    "s3": {"key": rec.key}})
        rows.append(ArtifactRow(workflow_uid=run.uid, node_id=nid, name=art["name"],
                                key=rec.key, uri=rec.uri, size=rec.size, digest=rec.digest,
                                created_at=now))
    with store.write() as s:
        # a result collected again after a restart (the controller died before the
        # node's phase was committed) keeps the rows already recorded
        have = q.artifact_names(s, run.uid, nid)
        s.add_all([r for r in rows if r.name not in have])
        record_metrics(s, run.state.plan, node, records, result.outputs or {},  # metrics_store
                       repository, run.uid)
    crash_point("outputs.saved")
    return out


def outcome_of(store: Store, repository, run: Run, nid: str, result: X.StepResult,
               now: float) -> PodOutcome:
    """What an ended attempt means for its node: phase, message, output files read,
    output artifacts stored (a missing one is the node's Error)."""
    files: dict[str, str | None] = {}
    for step_path, host_path in (result.outputs or {}).items():
        try:
            with open(host_path, "rb") as f:
                data = f.read(MAX_OUTPUT_BYTES + 1)
            files[step_path] = data[:MAX_OUTPUT_BYTES].decode("utf-8", "replace")
        except OSError:
            files[step_path] = None
    if result.outcome == X.SUCCEEDED:
        phase, message = P.SUCCEEDED, result.message or ""
    elif result.outcome == X.ERROR:
        phase, message = P.ERROR, result.message or "error"
    elif result.outcome == X.TIMEOUT:
        phase = P.FAILED
        message = "Pod was active on the node longer than the specified deadline"
    elif result.outcome == X.CANCELLED:
        phase, message = P.FAILED, result.message or "cancelled"
    else:
        phase = P.FAILED
        message = result.message or f"Error (exit code {result.exit_code})"
    artifacts: list[dict] = []
    if phase == P.SUCCEEDED:
        try:
            artifacts = save_outputs(store, repository, run, nid, result, now)
        except Exception as exc:  # noqa: BLE001 - a missing output is the node's Error
            phase, message = P.ERROR, str(exc)
    files = after_attempt(run.state.nodes[nid].step_dir, files, run.requests.get(nid))
    return PodOutcome(phase=phase, exit_code=result.exit_code, message=message,
                      started_at=result.started_at, finished_at=result.finished_at,
                      result=result.result, files=files, artifacts=artifacts)
