"""Experiments: named groups of runs, archived when done, compared by parameters/metrics."""

from __future__ import annotations

import time
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from chute.errors import ConflictError, NotFoundError
from chute.server.deps import ServerContext, get_ctx
from chute.server.schemas import ERROR_RESPONSES, Experiment, ExperimentCreate, Page
from chute.store.models import WorkflowRow
from chute.store.models_server import ExperimentRow

router = APIRouter(tags=["experiments"], responses=ERROR_RESPONSES)
Ctx = Annotated[ServerContext, Depends(get_ctx)]


def find_experiment(session: Session, id_or_name: str) -> ExperimentRow:
    """The experiment with this id or name; NotFoundError otherwise."""
    row = session.get(ExperimentRow, id_or_name)
    if row is None:
        row = session.scalar(select(ExperimentRow).where(ExperimentRow.name == id_or_name))
    if row is None:
        raise NotFoundError(f"experiment {id_or_name!r} not found")
    return row


def _view(session: Session, row: ExperimentRow) -> Experiment:
    count = session.scalar(select(func.count()).select_from(WorkflowRow)
                           .where(WorkflowRow.experiment_id == row.id)) or 0
    return Experiment(id=row.id, name=row.name, description=row.description,
                      archived=row.archived, createdAt=row.created_at, runCount=count)


@router.post("/experiments", status_code=201, response_model=Experiment,
             summary="Create an experiment")
def create_experiment(ctx: Ctx, body: ExperimentCreate) -> Experiment:
    with ctx.store.write() as s:
        if s.scalar(select(ExperimentRow.id).where(ExperimentRow.name == body.name)):
            raise ConflictError(f"experiment {body.name!r} already exists")
        row = ExperimentRow(id=uuid.uuid4().hex, name=body.name,
                            description=body.description, archived=False,
                            created_at=time.time())
        s.add(row)
        s.flush()
        return _view(s, row)


@router.get("/experiments", response_model=Page, summary="List experiments")
def list_experiments(
    ctx: Ctx,
    archived: bool | None = Query(None, description="only archived (true) or active (false)"),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=2**31 - 1),
) -> Page:
    with ctx.store.read() as s:
        q = select(ExperimentRow)
        if archived is not None:
            q = q.where(ExperimentRow.archived == archived)
        total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
        rows = s.scalars(q.order_by(ExperimentRow.created_at.desc()).limit(limit)
                         .offset(offset))
        items = [_view(s, r) for r in rows]
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.get("/experiments/{experiment_id}", response_model=Experiment,
            summary="Get an experiment")
def get_experiment(ctx: Ctx, experiment_id: str) -> Experiment:
    with ctx.store.read() as s:
        return _view(s, find_experiment(s, experiment_id))


@router.post("/experiments/{experiment_id}/archive", response_model=Experiment,
             summary="Archive an experiment (its runs stay)")
def archive_experiment(ctx: Ctx, experiment_id: str) -> Experiment:
    return _set_archived(ctx, experiment_id, True)


@router.post("/experiments/{experiment_id}/unarchive", response_model=Experiment,
             summary="Bring an archived experiment back")
def unarchive_experiment(ctx: Ctx, experiment_id: str) -> Experiment:
    return _set_archived(ctx, experiment_id, False)


def _set_archived(ctx: ServerContext, experiment_id: str, value: bool) -> Experiment:
    with ctx.store.write() as s:
        row = find_experiment(s, experiment_id)
        row.archived = value
        s.flush()
        return _view(s, row)
