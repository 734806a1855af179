"""Tables of the model registry: named models and their numbered versions.

A version records what is needed to trust and reproduce a model: its metrics, training
parameters, digests of the data it saw, the run and node that produced it (lineage), the
artifact URI of the saved model, and its stage (``none``, ``staging``, ``production``,
``archived``). Migration: ``0003_registry``. Queries live in :mod:`chute.ml.registry`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from chute.store.models import Base


class ModelRow(Base):
    """A registered model: a name under which versions accumulate."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(253), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class ModelVersionRow(Base):
    """One version of a model, with metrics, params, data digests and lineage."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version", name="uq_model_versions"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(Integer, ForeignKey("models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    stage: Mapped[str] = mapped_column(String(16), default="none")
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    data_digests: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    workflow_uid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    workflow_name: Mapped[str | None] = mapped_column(String(253), nullable=True)
    node_id: Mapped[str | None] = mapped_column(String(300), nullable=True)
    artifact_uri: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float)
    stage_changed_at: Mapped[float] = mapped_column(Float)


Index("ix_model_versions_model_stage", ModelVersionRow.model_id, ModelVersionRow.stage)
Index("ix_model_versions_workflow", ModelVersionRow.workflow_uid)
