"""Leaf templates (container and script): what to launch, and outputs from the result.

The image is recorded, never pulled: the command runs on the host. A script's ``source``
is written to a file in the step directory by the executor and appended to ``command``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chute.engine.secrets_env import secret_env_refs
from chute.engine.vars import has_tags, substitute, substitute_all


@dataclass(frozen=True)
class LaunchRequest:
    """A decision to launch one attempt of a pod node (turned into a LaunchSpec by the
    controller, which owns step directories and the executor)."""

    workflow_uid: str
    node_id: str
    attempt: int
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    script_source: str | None = None
    output_paths: list[str] = field(default_factory=list)
    input_artifacts: list[dict[str, Any]] = field(default_factory=list)
    output_artifacts: list[dict[str, Any]] = field(default_factory=list)
    deadline_seconds: float | None = None  # relative; the controller makes it absolute
    image: str | None = None
    step_dir: str | None = None
    log_path: str | None = None
    secret_env: list[dict[str, Any]] = field(default_factory=list)  # secretKeyRef refs, no values
    volume_mounts: list[str] = field(default_factory=list)  # mountPaths (emptyDir: the only
    # volumes the local runtime accepts, see chute.spec.validate_local)


@dataclass(frozen=True)
class PodOutcome:
    """How a pod attempt ended, with the output files the controller read for it."""

    phase: str  # Succeeded, Failed or Error
    exit_code: int | None = None
    message: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    result: str | None = None  # stdout
    files: dict[str, str | None] = field(default_factory=dict)  # step path -> content
    artifacts: list[dict[str, Any]] = field(default_factory=list)  # saved output artifacts


#: Default commands of images Argo's examples use (the image's ENTRYPOINT): a container
#: with ``args`` but no ``command`` runs them, as the image would.
IMAGE_ENTRYPOINTS = {
    "argoproj/argosay:v2": ["argosay"],
    "argoproj/argosay:v1": ["cowsay"],
    "docker/whalesay": ["cowsay"],
}


def image_entrypoint(image: str | None) -> list[str]:
    """The default command of ``image`` when chute knows it, else []."""
    if not image:
        return []
    for prefix, cmd in IMAGE_ENTRYPOINTS.items():
        if image.startswith(prefix):  # "docker/whalesay" also covers ":latest"
            return list(cmd)
    return []


def pod_vars(tmpl: Mapping[str, Any]) -> dict[str, str]:
    """``outputs.parameters.X.path`` / ``outputs.artifacts.X.path`` for a leaf template."""
    out: dict[str, str] = {}
    outputs = tmpl.get("outputs") or {}
    for p in outputs.get("parameters") or []:
        path = (p.get("valueFrom") or {}).get("path")
        if path:
            out[f"outputs.parameters.{p['name']}.path"] = path
    for a in outputs.get("artifacts") or []:
        if a.get("path"):
            out[f"outputs.artifacts.{a['name']}.path"] = a["path"]
    return out


def _deadline(tmpl: Mapping[str, Any], ctx: Mapping[str, str]) -> float | None:
    """Seconds a step may run: ``activeDeadlineSeconds`` or ``timeout`` (shorter wins)."""
    ads = tmpl.get("activeDeadlineSeconds")
    if ads in (None, "") and not tmpl.get("timeout"):
        return None  # most steps (and no import statement per launch)
    from chute.engine.durations import parse_duration

    limits = []
    if ads not in (None, ""):
        limits.append(parse_duration(substitute(str(ads), ctx)))
    if tmpl.get("timeout"):
        limits.append(parse_duration(substitute(str(tmpl["timeout"]), ctx)))
    return min(limits) if limits else None


def launch_request(workflow_uid: str, node_id: str, attempt: int, tmpl: Mapping[str, Any],
                   ctx: Mapping[str, str]) -> LaunchRequest:
    """Substitute a leaf template and describe its launch."""
    kind = "script" if tmpl.get("script") is not None else "container"
    body = tmpl[kind]
    sub = lambda v: substitute(str(v), ctx)
    command = [sub(c) for c in (body.get("command") or [])]
    args = [sub(a) for a in (body.get("args") or [])]
    source = None
    if kind == "script":
        source = sub(body.get("source") or "")
        argv = command or ["python"]
        argv = argv + args
    else:
        argv = (command or image_entrypoint(body.get("image"))) + args
    env = {}
    for e in body.get("env") or []:
        if e.get("value") is not None:
            env[e["name"]] = sub(e["value"])
    outputs = tmpl.get("outputs") or {}
    out_paths = [sub(p["valueFrom"]["path"]) for p in outputs.get("parameters") or []
                 if (p.get("valueFrom") or {}).get("path")]
    out_arts = [substitute_all(a, ctx) for a in outputs.get("artifacts") or [] if a.get("path")]
    return LaunchRequest(
        workflow_uid=workflow_uid, node_id=node_id, attempt=attempt, argv=argv, env=env,
        working_dir=sub(body["workingDir"]) if body.get("workingDir") else None,
        script_source=source, output_paths=out_paths + [a["path"] for a in out_arts],
        output_artifacts=out_arts, deadline_seconds=_deadline(tmpl, ctx),
        image=body.get("image"),
        secret_env=secret_env_refs(body.get("env"), sub),  # resolved at launch (secrets_env)
        volume_mounts=[sub(m["mountPath"]) for m in body.get("volumeMounts") or []
                       if m.get("mountPath")],
    )


def launch_tagless(tmpl: Mapping[str, Any]) -> bool:
    """Whether nothing :func:`launch_request` reads from a leaf template holds a ``{{``
    tag: every pod of it then gets the same request but for its ids."""
    kind = "script" if tmpl.get("script") is not None else "container"
    return not any(has_tags(tmpl.get(k)) for k in (kind, "outputs", "activeDeadlineSeconds",
                                                   "timeout"))


def collect_outputs(tmpl: Mapping[str, Any], outcome: PodOutcome, ctx: Mapping[str, str]
                    ) -> tuple[dict[str, Any], str | None]:
    """Outputs in Argo's shape, and an error message if a required output is missing."""
    outputs: dict[str, Any] = {}
    error = None
    params = []
    for p in ((tmpl.get("outputs") or {}).get("parameters") or []):
        vf = p.get("valueFrom") or {}
        value = None
        if vf.get("path"):
            content = outcome.files.get(substitute(vf["path"], ctx))
            if content is not None:
                value = content.removesuffix("\n")
            elif vf.get("default") is not None:
                value = vf["default"]
            elif outcome.phase == "Succeeded":
                error = (f"outputs.parameters.{p['name']}: no file at {vf['path']} "
                         f"and no valueFrom.default")
        elif p.get("value") is not None:
            value = substitute(str(p["value"]), ctx)
        elif vf.get("default") is not None:
            value = vf["default"]
        if value is not None:
            entry = {"name": p["name"], "value": value}
            if p.get("globalName"):
                entry["globalName"] = p["globalName"]
            params.append(entry)
    if params:
        outputs["parameters"] = params
    if outcome.artifacts:
        outputs["artifacts"] = list(outcome.artifacts)
    if outcome.result is not None:
        outputs["result"] = outcome.result.removesuffix("\n")
    if outcome.exit_code is not None:
        outputs["exitCode"] = str(outcome.exit_code)
    return outputs, error
