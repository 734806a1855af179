"""Pipelines: upload (Argo YAML or a Python file), versions, parameters and static DAG."""

from __future__ import annotations

import time
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from chute.errors import ConflictError, NotFoundError, UserError
from chute.server.deps import ServerContext, get_ctx
from chute.server.graph import parameters_of, static_graph
from chute.server.schemas import ERROR_RESPONSES, Page, Pipeline, PipelineVersion
from chute.server.uploads import MAX_UPLOAD_BYTES, parse_upload
from chute.store.models_server import PipelineRow, PipelineVersionRow

router = APIRouter(tags=["pipelines"], responses=ERROR_RESPONSES)
Ctx = Annotated[ServerContext, Depends(get_ctx)]


def find_pipeline(session: Session, id_or_name: str) -> PipelineRow:
    """The pipeline with this id or name; NotFoundError otherwise."""
    row = session.get(PipelineRow, id_or_name)
    if row is None:
        row = session.scalar(select(PipelineRow).where(PipelineRow.name == id_or_name))
    if row is None:
        raise NotFoundError(f"pipeline {id_or_name!r} not found")
    return row


def find_version(session: Session, pipeline_id: str, version: int | None) -> PipelineVersionRow:
    """A version of a pipeline (the latest when ``version`` is None)."""
    q = select(PipelineVersionRow).where(PipelineVersionRow.pipeline_id == pipeline_id)
    if version is None:
        q = q.order_by(PipelineVersionRow.version.desc()).limit(1)
    else:
        q = q.where(PipelineVersionRow.version == version)
    row = session.scalar(q)
    if row is None:
        raise NotFoundError(f"pipeline {pipeline_id!r} has no version {version or ''}".strip())
    return row


def _versions(session: Session, pipeline_id: str) -> list[PipelineVersionRow]:
    q = (select(PipelineVersionRow).where(PipelineVersionRow.pipeline_id == pipeline_id)
         .order_by(PipelineVersionRow.version))
    return list(session.scalars(q))


def _summary(v: PipelineVersionRow) -> dict:
    return {"version": v.version, "sourceKind": v.source_kind, "description": v.description,
            "createdAt": v.created_at}


def _pipeline(session: Session, row: PipelineRow) -> Pipeline:
    versions = _versions(session, row.id)
    return Pipeline(
        id=row.id, name=row.name, description=row.description, createdAt=row.created_at,
        latestVersion=versions[-1].version if versions else None,
        versions=[_summary(v) for v in versions],
    )


def version_view(v: PipelineVersionRow) -> PipelineVersion:
    """A version with everything the pipeline page shows."""
    return PipelineVersion(
        pipelineId=v.pipeline_id, spec=v.spec, source=v.source,
        parameters=parameters_of(v.spec), graph=static_graph(v.spec), **_summary(v),
    )


async def _read(upload: UploadFile) -> tuple[str, bytes]:
    data = await upload.read(MAX_UPLOAD_BYTES + 1)
    name = upload.filename or "pipeline.yaml"
    return name, data


@router.post("/pipelines", status_code=201, response_model=Pipeline,
             summary="Upload a pipeline (Argo YAML/JSON or a Python file)")
async def upload_pipeline(
    ctx: Ctx,
    file: UploadFile = File(..., description="pipeline.yaml, pipeline.json or pipeline.py"),
    name: str | None = Form(None, max_length=253),
    description: str = Form("", max_length=10_000),
) -> Pipeline:
    filename, data = await _read(file)
    kind, source, spec = parse_upload(filename, data)
    meta = spec.get("metadata") or {}
    pname = (name or meta.get("name") or meta.get("generateName", "").rstrip("-")
             or filename.rsplit(".", 1)[0]).strip()
    if not pname:
        raise UserError("name: a pipeline needs a name")
    now = time.time()
    with ctx.store.write() as s:
        if s.scalar(select(PipelineRow.id).where(PipelineRow.name == pname)):
            raise ConflictError(f"pipeline {pname!r} already exists; upload a new version")
        row = PipelineRow(id=uuid.uuid4().hex, name=pname, description=description,
                          created_at=now)
        s.add(row)
        s.flush()
        s.add(PipelineVersionRow(pipeline_id=row.id, version=1, source_kind=kind,
                                 source=source, spec=spec, description=description,
                                 created_at=now))
        s.flush()
        return _pipeline(s, row)


@router.get("/pipelines", response_model=Page, summary="List pipelines")
def list_pipelines(
    ctx: Ctx,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=2**31 - 1),
    q: str | None = Query(None, max_length=253, description="name contains"),
) -> Page:
    with ctx.store.read() as s:
        query = select(PipelineRow)
        if q:
            query = query.where(PipelineRow.name.contains(q, autoescape=True))
        total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = s.scalars(query.order_by(PipelineRow.created_at.desc()).limit(limit)
                         .offset(offset))
        items = [_pipeline(s, r) for r in rows]
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.get("/pipelines/{pipeline_id}", response_model=Pipeline, summary="Get a pipeline")
def get_pipeline(ctx: Ctx, pipeline_id: str) -> Pipeline:
    with ctx.store.read() as s:
        return _pipeline(s, find_pipeline(s, pipeline_id))


@router.delete("/pipelines/{pipeline_id}", status_code=204, summary="Delete a pipeline")
def delete_pipeline(ctx: Ctx, pipeline_id: str) -> Response:
    with ctx.store.write() as s:
        row = find_pipeline(s, pipeline_id)
        for v in _versions(s, row.id):
            s.delete(v)
        s.delete(row)
    return Response(status_code=204)


@router.post("/pipelines/{pipeline_id}/versions", status_code=201,
             response_model=PipelineVersion, summary="Upload a new version of a pipeline")
async def upload_version(
    ctx: Ctx,
    pipeline_id: str,
    file: UploadFile = File(...),
    description: str = Form("", max_length=10_000),
) -> PipelineVersion:
    with ctx.store.read() as s:
        find_pipeline(s, pipeline_id)  # 404 before the (possibly slow) compile
    filename, data = await _read(file)
    kind, source, spec = parse_upload(filename, data)
    with ctx.store.write() as s:
        row = find_pipeline(s, pipeline_id)
        latest = s.scalar(select(func.max(PipelineVersionRow.version))
                          .where(PipelineVersionRow.pipeline_id == row.id)) or 0
        v = PipelineVersionRow(pipeline_id=row.id, version=latest + 1, source_kind=kind,
                               source=source, spec=spec, description=description,
                               created_at=time.time())
        s.add(v)
        s.flush()
        return version_view(v)


@router.get("/pipelines/{pipeline_id}/versions", response_model=Page,
            summary="List the versions of a pipeline")
def list_versions(ctx: Ctx, pipeline_id: str) -> Page:
    with ctx.store.read() as s:
        row = find_pipeline(s, pipeline_id)
        items = [_summary(v) for v in _versions(s, row.id)]
    return Page(items=items, total=len(items), limit=len(items), offset=0)


@router.get("/pipelines/{pipeline_id}/versions/{version}", response_model=PipelineVersion,
            summary="Get a version: spec, source, parameters and DAG")
def get_version(ctx: Ctx, pipeline_id: str, version: str) -> PipelineVersion:
    if version != "latest" and not version.isdigit():
        raise UserError(f"version: expected a number or 'latest', got {version!r}")
    with ctx.store.read() as s:
        row = find_pipeline(s, pipeline_id)
        v = find_version(s, row.id, None if version == "latest" else int(version))
        return version_view(v)
