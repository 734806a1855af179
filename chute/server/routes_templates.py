"""Workflow templates: store, list, get and delete WorkflowTemplate resources."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from chute.errors import NotFoundError, UserError
from chute.server.deps import ServerContext, get_ctx
from chute.server.schemas import ERROR_RESPONSES, Page, TemplateCreate
from chute.server.uploads import load_spec_text

router = APIRouter(tags=["workflow templates"], responses=ERROR_RESPONSES)
Ctx = Annotated[ServerContext, Depends(get_ctx)]
TEMPLATE_KINDS = ("WorkflowTemplate", "ClusterWorkflowTemplate")


def _kind_for(name: str, ctx: ServerContext) -> str:
    from chute.store import queries

    with ctx.store.read() as s:
        for kind in TEMPLATE_KINDS:
            if queries.get_template(s, kind, name) is not None:
                return kind
    raise NotFoundError(f"workflow template {name!r} not found")


@router.post("/workflow-templates", status_code=201, summary="Create or replace a template")
def create_template(ctx: Ctx, body: TemplateCreate) -> dict:
    import json

    from chute.store import queries

    if (body.yaml is None) == (body.template is None):
        raise UserError("body: give exactly one of 'yaml' or 'template'")
    text = body.yaml if body.yaml is not None else json.dumps(body.template)
    spec = load_spec_text(text, "template")
    if spec.get("kind") not in TEMPLATE_KINDS:
        raise UserError(f"kind: expected WorkflowTemplate, got {spec.get('kind')!r}")
    meta = spec.get("metadata") or {}
    name = meta.get("name")
    if not name:
        raise UserError("metadata.name: a template needs a name")
    with ctx.store.write() as s:
        queries.put_template(s, spec["kind"], name, meta.get("namespace") or "default", spec,
                             time.time())
    return spec


@router.get("/workflow-templates", response_model=Page, summary="List templates")
def list_templates(ctx: Ctx) -> Page:
    from chute.store import queries

    with ctx.store.read() as s:
        items = [{"kind": r.kind, "name": r.name, "namespace": r.namespace,
                  "createdAt": r.created_at} for r in queries.list_templates(s)]
    return Page(items=items, total=len(items), limit=len(items), offset=0)


@router.get("/workflow-templates/{name}", summary="Get a template resource")
def get_template(ctx: Ctx, name: str) -> dict:
    from chute.store import queries

    kind = _kind_for(name, ctx)
    with ctx.store.read() as s:
        return queries.get_template(s, kind, name)


@router.delete("/workflow-templates/{name}", status_code=204, summary="Delete a template")
def delete_template(ctx: Ctx, name: str) -> Response:
    from chute.store import queries

    kind = _kind_for(name, ctx)
    with ctx.store.write() as s:
        queries.delete_template(s, kind, name)
    return Response(status_code=204)
