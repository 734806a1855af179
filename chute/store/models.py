"""The metadata store's tables, as typed SQLAlchemy 2.0 models.

The schema is owned by Alembic (``chute/store/migrations``): these classes describe it for
queries and must match the latest migration (a test compares them).

Times are stored as epoch seconds (``float``): exact, timezone-free and cheap to compare;
the Argo-shaped views render them as RFC 3339.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base of every chute table."""

    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class WorkflowRow(Base):
    """One submitted Workflow: its resource, arguments, phase and the controller lease."""

    __tablename__ = "workflows"
    # covers the controller's fence (leases.fence_workflows; migration 0010)
    __table_args__ = (Index("ix_workflows_lease", "uid", "lease_owner", "lease_expires_at"),)

    uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(253), unique=True)
    namespace: Mapped[str] = mapped_column(String(253), default="default")
    kind: Mapped[str] = mapped_column(String(64), default="Workflow")
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # the full submitted resource
    arguments: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # name -> value
    phase: Mapped[str] = mapped_column(String(32), default="Pending", index=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    suspended: Mapped[bool] = mapped_column(Boolean, default=False)
    shutdown: Mapped[str | None] = mapped_column(String(32), nullable=True)  # Stop|Terminate
    resumed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # output values `chute resume -p` supplies to suspend nodes (name -> value)
    resume_values: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # global outputs
    experiment_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    # the replay format of the run's recorded state (chute.engine.state_format); rows
    # written before the column existed are format 1
    state_format: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # a submission replayed with this key returns this run (unique; see engine.submit)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    request_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)


class NodeRow(Base):
    """One node of a workflow's node tree, in Argo's shape."""

    __tablename__ = "nodes"
    __table_args__ = (UniqueConstraint("workflow_uid", "node_id", name="uq_nodes_wf_node"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # no index of its own: uq_nodes_wf_node (workflow_uid, node_id) serves lookups by
    # workflow (migration 0011 dropped the one that only cost every node insert a B-tree)
    workflow_uid: Mapped[str] = mapped_column(
        String(64), ForeignKey("workflows.uid", ondelete="CASCADE")
    )
    node_id: Mapped[str] = mapped_column(String(300))
    name: Mapped[str] = mapped_column(Text)
    display_name: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(32))
    template_name: Mapped[str | None] = mapped_column(String(253), nullable=True)
    phase: Mapped[str] = mapped_column(String(32))
    boundary_id: Mapped[str | None] = mapped_column(String(300), nullable=True)
    parent_id: Mapped[str | None] = mapped_column(String(300), nullable=True)
    children: Mapped[list[Any]] = mapped_column(JSON, default=list)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    step_dir: Mapped[str | None] = mapped_column(Text, nullable=True)
    cached: Mapped[bool] = mapped_column(Boolean, default=False)


class EventRow(Base):
    """Append-only journal of node and workflow transitions; a transition id is unique."""

    __tablename__ = "events"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    transition_id: Mapped[str] = mapped_column(String(400), unique=True)
    workflow_uid: Mapped[str] = mapped_column(String(64), index=True)
    node_id: Mapped[str | None] = mapped_column(String(300), nullable=True)
    from_phase: Mapped[str | None] = mapped_column(String(32), nullable=True)
    to_phase: Mapped[str] = mapped_column(String(32))
    at: Mapped[float] = mapped_column(Float)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)


class TemplateRow(Base):
    """A stored WorkflowTemplate or ClusterWorkflowTemplate, resolved by ``templateRef``."""

    __tablename__ = "templates"
    __table_args__ = (UniqueConstraint("kind", "namespace", "name", name="uq_templates_name"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64))
    namespace: Mapped[str] = mapped_column(String(253), default="default")
    name: Mapped[str] = mapped_column(String(253))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # the full resource
    created_at: Mapped[float] = mapped_column(Float)


class ArtifactRow(Base):
    """An artifact a node produced, where it is stored and its digest."""

    __tablename__ = "artifacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workflow_uid: Mapped[str] = mapped_column(String(64), index=True)
    node_id: Mapped[str] = mapped_column(String(300))
    name: Mapped[str] = mapped_column(String(253))
    key: Mapped[str] = mapped_column(Text)
    uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    digest: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[float] = mapped_column(Float)


class ArtifactConsumerRow(Base):
    """A node that consumed an artifact (lineage)."""

    __tablename__ = "artifact_consumers"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    artifact_id: Mapped[int] = mapped_column(Integer, ForeignKey("artifacts.id", ondelete="CASCADE"), index=True)
    workflow_uid: Mapped[str] = mapped_column(String(64))
    node_id: Mapped[str] = mapped_column(String(300))


class CacheEntryRow(Base):
    """A memoized result: the outputs of a node under a cache key."""

    __tablename__ = "cache_entries"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(512), index=True)
    workflow_uid: Mapped[str] = mapped_column(String(64))
    node_id: Mapped[str] = mapped_column(String(300))
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[float] = mapped_column(Float)


class MetricRow(Base):
    """A metric a node reported (a scalar, or structured data such as a confusion matrix)."""

    __tablename__ = "metrics"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workflow_uid: Mapped[str] = mapped_column(String(64), index=True)
    node_id: Mapped[str | None] = mapped_column(String(300), nullable=True)
    name: Mapped[str] = mapped_column(String(253))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    kind: Mapped[str] = mapped_column(String(32), default="scalar")
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class StepExecutionRow(Base):
    """One launched pod attempt and the controller that launched it: the unique
    ``(workflow_uid, node_id, attempt)`` makes a second launch of an attempt fail to commit."""

    __tablename__ = "step_executions"
    __table_args__ = (UniqueConstraint("workflow_uid", "node_id", "attempt",
                                       name="uq_step_executions"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workflow_uid: Mapped[str] = mapped_column(
        String(64), ForeignKey("workflows.uid", ondelete="CASCADE"))
    node_id: Mapped[str] = mapped_column(String(300))
    attempt: Mapped[int] = mapped_column(Integer)
    owner: Mapped[str] = mapped_column(String(128))
    launched_at: Mapped[float] = mapped_column(Float)


class LeaseRow(Base):
    """A named exclusive lease (``controller``: the one standalone controller)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))
    pid: Mapped[int] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(String(253))
    expires_at: Mapped[float] = mapped_column(Float)


Index("ix_nodes_wf_phase", NodeRow.workflow_uid, NodeRow.phase)
Index("ux_workflows_idempotency_key", WorkflowRow.idempotency_key, unique=True)
Index("ix_workflows_created_at", WorkflowRow.created_at)
Index("ix_workflows_phase_created", WorkflowRow.phase, WorkflowRow.created_at)
