"""Tables of the server: pipelines, their versions, and experiments.

A pipeline is a named, versioned workflow spec (uploaded as Argo YAML or compiled from a
Python file); a run of it is an ordinary workflow row labelled with the pipeline id and
version. An experiment groups runs (``workflows.experiment_id``) and can be archived.
Migration: ``0002_server`` (chute/store/migrations/versions).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from chute.store.models import Base


class PipelineRow(Base):
    """A named pipeline; its specs live in :class:`PipelineVersionRow`."""

    __tablename__ = "pipelines"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(253), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float)


class PipelineVersionRow(Base):
    """One uploaded version of a pipeline: its source and the workflow spec it compiles to."""

    __tablename__ = "pipeline_versions"
    __table_args__ = (UniqueConstraint("pipeline_id", "version", name="uq_pipeline_versions"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pipeline_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("pipelines.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    source_kind: Mapped[str] = mapped_column(String(16))  # "yaml" or "python"
    source: Mapped[str] = mapped_column(Text)
    spec: Mapped[dict[str, Any]] = mapped_column()  # the Workflow/WorkflowTemplate resource
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float)


class ExperimentRow(Base):
    """A group of runs that are compared with one another."""

    __tablename__ = "experiments"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(253), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)
