"""CronWorkflows: create, update, list, get, delete, suspend and resume (Argo's
``/api/v1/cron-workflows`` without the namespace segment). The schedules are ticked by
the controller (chute/triggers/cron.py), not by these routes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from chute.errors import SpecError, UserError
from chute.server.deps import ServerContext, get_ctx
from chute.server.schemas import ERROR_RESPONSES, CronWorkflowCreate, Page

router = APIRouter(tags=["cron workflows"], responses=ERROR_RESPONSES)
Ctx = Annotated[ServerContext, Depends(get_ctx)]


def _view(ctx: ServerContext, name: str) -> dict[str, Any]:
    from chute.triggers import crons

    with ctx.store.read() as s:
        return crons.view(s, crons.get(s, name))


def summary(view: dict[str, Any]) -> dict[str, Any]:
    """One line of ``argo cron list``: name, schedules, suspended, last and next run."""
    spec, status = view["spec"], view["status"]
    return {"name": view["metadata"]["name"],
            "schedules": spec.get("schedules") or [spec.get("schedule")],
            "timezone": spec.get("timezone"), "suspended": bool(spec.get("suspend")),
            "createdAt": view["metadata"].get("creationTimestamp"),
            "lastScheduledTime": status.get("lastScheduledTime"),
            "nextScheduledTime": status.get("nextScheduledTime"),
            "active": len(status["active"])}


@router.post("/cron-workflows", status_code=201, summary="Create a CronWorkflow")
def create_cron(ctx: Ctx, body: CronWorkflowCreate) -> dict:
    from chute.triggers import crons

    row = crons.create(ctx.store, _one(body), source="cronWorkflow")
    return _view(ctx, row.name)


def _one(body: CronWorkflowCreate):
    """The one CronWorkflow in a request body."""
    import json

    from chute.spec.loader import load_documents
    from chute.spec.models import CronWorkflow

    if (body.yaml is None) == (body.cronWorkflow is None):
        raise UserError("body: give exactly one of 'yaml' or 'cronWorkflow'")
    text = body.yaml if body.yaml is not None else json.dumps(body.cronWorkflow)
    docs = load_documents(text, "cronWorkflow")
    if len(docs) != 1 or not isinstance(docs[0], CronWorkflow):
        raise SpecError("expected one CronWorkflow", "cronWorkflow")
    return docs[0]


@router.put("/cron-workflows/{name}", summary="Replace a CronWorkflow (argo cron update)")
def update_cron(ctx: Ctx, name: str, body: CronWorkflowCreate) -> dict:
    from chute.triggers import crons

    doc = _one(body)
    if doc.metadata.name != name:
        raise UserError(f"metadata.name: {doc.metadata.name!r} does not match the path's "
                        f"{name!r}")
    crons.update(ctx.store, doc, source="cronWorkflow")
    return _view(ctx, name)


@router.get("/cron-workflows", response_model=Page, summary="List CronWorkflows")
def list_crons(ctx: Ctx) -> Page:
    from chute.triggers import crons

    with ctx.store.read() as s:
        items = [summary(crons.view(s, r)) for r in crons.list_all(s)]
    return Page(items=items, total=len(items), limit=len(items), offset=0)


@router.get("/cron-workflows/{name}", summary="Get a CronWorkflow with its status")
def get_cron(ctx: Ctx, name: str) -> dict:
    return _view(ctx, name)


@router.delete("/cron-workflows/{name}", status_code=204, summary="Delete a CronWorkflow")
def delete_cron(ctx: Ctx, name: str) -> Response:
    from chute.triggers import crons

    crons.delete(ctx.store, name)
    return Response(status_code=204)


@router.put("/cron-workflows/{name}/suspend", summary="Suspend a CronWorkflow's schedule")
def suspend_cron(ctx: Ctx, name: str) -> dict:
    from chute.triggers import crons

    crons.set_suspended(ctx.store, name, True)
    return _view(ctx, name)


@router.put("/cron-workflows/{name}/resume", summary="Resume a CronWorkflow's schedule")
def resume_cron(ctx: Ctx, name: str) -> dict:
    from chute.triggers import crons

    crons.set_suspended(ctx.store, name, False)
    return _view(ctx, name)
