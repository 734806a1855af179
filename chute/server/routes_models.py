"""The model registry (chute.ml.registry): models, versions, stage changes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict

from chute.server.deps import ServerContext, get_ctx
from chute.server.schemas import ERROR_RESPONSES

router = APIRouter(tags=["models"], responses=ERROR_RESPONSES)
Ctx = Annotated[ServerContext, Depends(get_ctx)]


class StageChange(BaseModel):
    """Body of PUT .../stage."""

    model_config = ConfigDict(extra="forbid")
    stage: str


@router.get("/models", summary="Registered models")
def list_models(ctx: Ctx) -> dict:
    from chute.ml import registry

    with ctx.store.read() as s:
        items = [m.to_dict() if hasattr(m, "to_dict") else dict(m.__dict__)
                 for m in registry.list_models(s)]
    return {"items": items, "total": len(items)}


@router.get("/models/{name}/versions", summary="Versions of a model, newest first")
def list_versions(ctx: Ctx, name: str) -> dict:
    from chute.ml import registry

    with ctx.store.read() as s:
        items = [v.to_dict() for v in registry.list_versions(s, name)]
    return {"items": items, "total": len(items)}


@router.get("/models/{name}/versions/{version}", summary="One version (a number or 'latest')")
def get_version(ctx: Ctx, name: str, version: str) -> dict:
    from chute.ml import registry

    with ctx.store.read() as s:
        return registry.get_version(s, name, int(version) if version.isdigit() else version
                                    ).to_dict()


@router.put("/models/{name}/versions/{version}/stage", summary="Move a version to a stage")
def set_stage(ctx: Ctx, name: str, version: str, body: StageChange) -> dict:
    from chute.ml import registry

    with ctx.store.write() as s:
        return registry.promote(s, name, version, body.stage).to_dict()
