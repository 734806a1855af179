"""Runs: submit (a pipeline version, a stored template, or a workflow), list, get in
Argo's shape, nodes, metrics, and the lifecycle actions the engine provides."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import Response

from chute.errors import ConflictError, NotFoundError, UserError
from chute.server.deps import ServerContext, get_ctx
from chute.server.run_actions import available_actions, delete_available, run_action
from chute.server.runs_view import (
    PIPELINE_LABEL,
    VERSION_LABEL,
    argo_document,
    json_response,
    list_runs,
    progress_of,
    summary,
)
from chute.server.schemas import ERROR_RESPONSES, Page, ResumeBody, RunCreate

router = APIRouter(tags=["runs"], responses=ERROR_RESPONSES)
Ctx = Annotated[ServerContext, Depends(get_ctx)]
PHASES = {"Pending", "Running", "Succeeded", "Failed", "Error"}


def find_run(session, name: str):
    """The workflow row of run ``name`` (or uid); NotFoundError otherwise."""
    from chute.store import queries

    return queries.get_workflow(session, name)


def _resource_for(ctx: ServerContext, body: RunCreate) -> tuple[dict[str, Any], dict[str, str]]:
    """The Workflow dict to submit and the labels it gets, from whichever source was given."""
    from chute.server.routes_pipelines import find_pipeline, find_version
    from chute.server.uploads import load_spec_text

    given = [k for k in ("pipelineId", "workflowTemplate", "workflow", "yaml")
             if getattr(body, k) is not None]
    if len(given) != 1:
        raise UserError("body: give exactly one of pipelineId, workflowTemplate, workflow, yaml")
    labels: dict[str, str] = dict(body.labels)
    if body.pipelineId is not None:
        with ctx.store.read() as s:
            pipe = find_pipeline(s, body.pipelineId)
            ver = find_version(s, pipe.id, body.pipelineVersion)
            spec = json.loads(json.dumps(ver.spec))
        labels[PIPELINE_LABEL] = pipe.id
        labels[VERSION_LABEL] = str(ver.version)
        meta = spec.get("metadata") or {}
        spec["kind"] = "Workflow"  # a WorkflowTemplate pipeline runs as a Workflow
        spec["metadata"] = {k: v for k, v in meta.items()
                            if k in ("labels", "annotations", "namespace")}
        spec["metadata"]["generateName"] = f"{pipe.name}-"
        return spec, labels
    if body.workflowTemplate is not None:
        name = body.workflowTemplate
        return ({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                 "metadata": {"generateName": f"{name}-"},
                 "spec": {"workflowTemplateRef": {"name": name}}}, labels)
    if body.workflow is not None:
        return load_spec_text(json.dumps(body.workflow), "workflow"), labels
    return load_spec_text(body.yaml or "", "yaml"), labels


@router.post("/runs", status_code=201, summary="Submit a run",
             description="With an ``Idempotency-Key`` header, a request replayed with the same "
                         "key and body returns the run it created (200, header "
                         "``Idempotent-Replayed: true``); the same key with a different body "
                         "is a 409.")
def create_run(ctx: Ctx, body: RunCreate, response: Response,
               idempotency_key: Annotated[str | None, Header(
                   alias="Idempotency-Key", max_length=255,
                   description="a client-chosen key: one run per key")] = None) -> dict:
    from chute.engine.submit import submit_once
    from chute.server.routes_experiments import find_experiment
    from chute.spec.loader import load_resource
    from chute.store import queries

    experiment_id = None
    if body.experimentId:
        with ctx.store.read() as s:
            exp = find_experiment(s, body.experimentId)
            if exp.archived:
                raise ConflictError(f"experiment {exp.name!r} is archived; unarchive it first")
            experiment_id = exp.id
    spec, labels = _resource_for(ctx, body)
    if experiment_id:
        labels["chute.dev/experiment-id"] = experiment_id
    if body.name:
        spec.setdefault("metadata", {})["name"] = body.name
        spec["metadata"].pop("generateName", None)
    if spec.get("kind") != "Workflow":
        raise UserError(f"kind: can only run a Workflow, not {spec.get('kind')!r}")
    row, created = submit_once(ctx.store, load_resource(spec), dict(body.parameters),
                               labels=labels, idempotency_key=idempotency_key)
    if not created:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    elif experiment_id:
        with ctx.store.write() as s:
            queries.update_workflow(s, row.uid, experiment_id=experiment_id)
    with ctx.store.read() as s:
        return argo_document(s, find_run(s, row.uid))


@router.get("/runs", response_model=Page, summary="List runs (filters and paging)")
def get_runs(
    ctx: Ctx,
    phase: str | None = Query(None, description="comma-separated phases", max_length=100),
    experiment: str | None = Query(None, max_length=253, description="experiment id or name"),
    pipeline: str | None = Query(None, max_length=253, description="pipeline id"),
    q: str | None = Query(None, max_length=253, description="name contains"),
    include: str | None = Query(None, pattern="^(metrics)?$",
                                description="'metrics' adds each run's scalar metrics"),
    limit: int = Query(50, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=2**31 - 1),
) -> Page:
    from chute.server.routes_experiments import find_experiment
    from chute.server.run_metrics import scalar_metrics

    phases = [p.strip() for p in phase.split(",") if p.strip()] if phase else None
    bad = [p for p in phases or [] if p not in PHASES]
    if bad:
        raise UserError(f"phase: unknown phase {bad[0]!r} (one of {', '.join(sorted(PHASES))})")
    with ctx.store.read() as s:
        exp_id = find_experiment(s, experiment).id if experiment else None
        rows, total = list_runs(s, phases=phases, experiment_id=exp_id, pipeline_id=pipeline,
                                name_contains=q, limit=limit, offset=offset)
        progress = progress_of(s, [r.uid for r in rows])
        items = [summary(r, progress[r.uid]) for r in rows]
        if include == "metrics":
            for item, row in zip(items, rows):
                item["metrics"] = scalar_metrics(ctx, s, row)
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.get("/run-actions", summary="The lifecycle actions this server's engine supports")
def run_actions() -> dict:
    return {"actions": available_actions(), "delete": delete_available()}


@router.get("/runs/{name}", summary="Get a run in Argo's Workflow shape",
            response_class=Response, responses={200: {"content": {"application/json": {}}}})
def get_run(ctx: Ctx, name: str) -> Response:
    with ctx.store.read() as s:
        return json_response(argo_document(s, find_run(s, name)))


@router.get("/runs/{name}/nodes", summary="The nodes of a run (Argo NodeStatus)",
            response_class=Response, responses={200: {"content": {"application/json": {}}}})
def get_nodes(ctx: Ctx, name: str) -> Response:
    with ctx.store.read() as s:
        doc = argo_document(s, find_run(s, name))
    return json_response({"items": list((doc.get("status") or {}).get("nodes", {}).values())})


@router.get("/runs/{name}/nodes/{node_id}", summary="One node of a run")
def get_node(ctx: Ctx, name: str, node_id: str) -> dict:
    with ctx.store.read() as s:
        doc = argo_document(s, find_run(s, name))
    node = (doc.get("status") or {}).get("nodes", {}).get(node_id)
    if node is None:
        raise NotFoundError(f"run {name!r} has no node {node_id!r}")
    return node


@router.get("/runs/{name}/metrics", summary="Metrics of a run: scalars, series, ROC, confusion")
def get_metrics(ctx: Ctx, name: str) -> dict:
    from chute.server.run_metrics import run_metrics

    with ctx.store.read() as s:
        return run_metrics(ctx, s, find_run(s, name))


def _act(ctx: ServerContext, verb: str, name: str, **kw: Any) -> Response:
    with ctx.store.read() as s:
        name = find_run(s, name).name  # 404 for an unknown run, before the engine
    shown = run_action(ctx, verb, name, **kw)
    with ctx.store.read() as s:
        return json_response(argo_document(s, find_run(s, shown)))


def _action_route(verb: str):
    def act(ctx: Ctx, name: str) -> Response:
        return _act(ctx, verb, name)

    act.__name__ = f"{verb}_run"
    return act


def resume_run(ctx: Ctx, name: str, body: ResumeBody | None = None) -> Response:
    """Resume a run; ``parameters`` fill its suspend steps' supplied output parameters
    (an unknown name is a 400 naming it, and nothing changes)."""
    return _act(ctx, "resume", name, values=dict(body.parameters) if body else None)


for _verb in available_actions():
    if _verb == "resume":
        router.add_api_route("/runs/{name}/resume", resume_run, methods=["PUT"],
                             summary="Resume a run (supplying suspend outputs)",
                             response_class=Response,
                             responses={200: {"content": {"application/json": {}}}})
        continue
    router.add_api_route(f"/runs/{{name}}/{_verb}", _action_route(_verb), methods=["PUT"],
                         summary=f"{_verb.capitalize()} a run", response_class=Response,
                         responses={200: {"content": {"application/json": {}}}})

if delete_available():
    @router.delete("/runs/{name}", status_code=204, summary="Delete a run and its records")
    def delete_run(ctx: Ctx, name: str) -> Response:
        from chute.server.run_actions import delete

        with ctx.store.read() as s:
            uid = find_run(s, name).uid
        delete(ctx, uid)
        return Response(status_code=204)
