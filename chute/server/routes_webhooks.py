"""Webhook triggers: manage them under ``/api/v1/webhooks`` (bearer token), receive
deliveries at ``POST /webhooks/<name>`` (no token: the HMAC signature is checked instead,
see chute/triggers/webhook.py; the auth middleware lets exactly these POSTs through)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from chute.errors import UserError
from chute.server.deps import ServerContext, get_ctx
from chute.server.schemas import ERROR_RESPONSES, Page, WebhookCreate

router = APIRouter(tags=["webhooks"], responses=ERROR_RESPONSES)
hooks_router = APIRouter(tags=["webhooks"], responses=ERROR_RESPONSES)
Ctx = Annotated[ServerContext, Depends(get_ctx)]
DELIVERY_PREFIX = "/webhooks/"


def _secrets(ctx: ServerContext):
    from chute.secrets import SecretStore

    return SecretStore(ctx.settings.secrets_dir)


def _item(row) -> dict:
    return {**row.spec, "url": f"{DELIVERY_PREFIX}{row.name}"}


@router.post("/webhooks", status_code=201, summary="Create a webhook trigger")
def create_webhook(ctx: Ctx, body: WebhookCreate) -> dict:
    from chute.spec.loader import parse_documents
    from chute.triggers import webhook

    if (body.yaml is None) == (body.webhook is None):
        raise UserError("body: give exactly one of 'yaml' or 'webhook'")
    docs = parse_documents(body.yaml, "webhook") if body.yaml is not None else [body.webhook]
    if len(docs) != 1:
        raise UserError(f"webhook: expected one WebhookTrigger, got {len(docs)} documents")
    trigger = webhook.create(ctx.store, docs[0], source="webhook", secrets=_secrets(ctx))
    return _item(webhook.get(ctx.store, trigger.metadata.name))


@router.get("/webhooks", response_model=Page, summary="List webhook triggers")
def list_webhooks(ctx: Ctx) -> Page:
    from chute.triggers import webhook

    items = [_item(r) for r in webhook.list_all(ctx.store)]
    return Page(items=items, total=len(items), limit=len(items), offset=0)


@router.get("/webhooks/{name}", summary="Get a webhook trigger")
def get_webhook(ctx: Ctx, name: str) -> dict:
    from chute.triggers import webhook

    return _item(webhook.get(ctx.store, name))


@router.delete("/webhooks/{name}", status_code=204, summary="Delete a webhook trigger")
def delete_webhook(ctx: Ctx, name: str) -> Response:
    from chute.triggers import webhook

    webhook.delete(ctx.store, name)
    return Response(status_code=204)


@hooks_router.post("/webhooks/{name}", summary="Deliver an event (HMAC-signed)",
                   responses={401: ERROR_RESPONSES[401]})
async def deliver(request: Request, name: str) -> JSONResponse:
    """201 with the run a new delivery created; 200 with the same run for a delivery id
    seen before; 202 for an event that triggers nothing (``ping``, filtered out)."""
    from chute.triggers import webhook

    ctx: ServerContext = request.app.state.ctx
    raw = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    run, created, why = await run_in_threadpool(
        webhook.deliver, ctx.store, name, headers, raw, secrets=_secrets(ctx))
    if run is None:
        return JSONResponse({"ignored": why}, status_code=202)
    body = {"workflow": run.name, "uid": run.uid, "created": created}
    return JSONResponse(body, status_code=201 if created else 200,
                        headers={} if created else {"Idempotent-Replayed": "true"})
