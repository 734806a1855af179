"""Poll triggers (DataTrigger, MetricTrigger): create, list, get, delete. They are polled
by the controller (chute/triggers/polling.py), not by these routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from chute.errors import UserError
from chute.server.deps import ServerContext, get_ctx
from chute.server.schemas import ERROR_RESPONSES, Page, TriggerCreate

router = APIRouter(tags=["triggers"], responses=ERROR_RESPONSES)
Ctx = Annotated[ServerContext, Depends(get_ctx)]


@router.post("/triggers", status_code=201, summary="Create a data or metric trigger")
def create_trigger(ctx: Ctx, body: TriggerCreate) -> dict:
    from chute.spec.loader import parse_documents
    from chute.triggers import polling

    if (body.yaml is None) == (body.trigger is None):
        raise UserError("body: give exactly one of 'yaml' or 'trigger'")
    docs = parse_documents(body.yaml, "trigger") if body.yaml is not None else [body.trigger]
    if len(docs) != 1:
        raise UserError(f"trigger: expected one trigger, got {len(docs)} documents")
    trig = polling.create(ctx.store, docs[0], source="trigger")
    return polling.view(polling.get(ctx.store, trig.metadata.name))


@router.get("/triggers", response_model=Page, summary="List data and metric triggers")
def list_triggers(ctx: Ctx) -> Page:
    from chute.triggers import polling

    items = [polling.view(r) for r in polling.list_all(ctx.store)]
    return Page(items=items, total=len(items), limit=len(items), offset=0)


@router.get("/triggers/{name}", summary="Get a trigger with its status")
def get_trigger(ctx: Ctx, name: str) -> dict:
    from chute.triggers import polling

    return polling.view(polling.get(ctx.store, name))


@router.delete("/triggers/{name}", status_code=204, summary="Delete a trigger")
def delete_trigger(ctx: Ctx, name: str) -> Response:
    from chute.triggers import polling

    polling.delete(ctx.store, name)
    return Response(status_code=204)
