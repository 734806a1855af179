"""Initial schema: workflows, nodes, events, templates, artifacts, cache, metrics.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workflows",
        sa.Column("uid", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(253), nullable=False, unique=True),
        sa.Column("namespace", sa.String(253), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("arguments", sa.JSON(), nullable=False),
        sa.Column("phase", sa.String(32), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("suspended", sa.Boolean(), nullable=False),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        sa.Column("lease_expires_at", sa.Float(), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("experiment_id", sa.String(64), nullable=True),
    )
    op.create_index("ix_workflows_phase", "workflows", ["phase"])
    op.create_index("ix_workflows_experiment_id", "workflows", ["experiment_id"])

    op.create_table(
        "nodes",
        sa.Column("pk", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "workflow_uid", sa.String(64),
            sa.ForeignKey("workflows.uid", ondelete="CASCADE"), nullable=False,
        ),
        sa.Column("node_id", sa.String(300), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("template_name", sa.String(253), nullable=True),
        sa.Column("phase", sa.String(32), nullable=False),
        sa.Column("boundary_id", sa.String(300), nullable=True),
        sa.Column("parent_id", sa.String(300), nullable=True),
        sa.Column("children", sa.JSON(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("step_dir", sa.Text(), nullable=True),
        sa.Column("cached", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("workflow_uid", "node_id", name="uq_nodes_wf_node"),
    )
    op.create_index("ix_nodes_workflow_uid", "nodes", ["workflow_uid"])
    op.create_index("ix_nodes_wf_phase", "nodes", ["workflow_uid", "phase"])

    op.create_table(
        "events",
        sa.Column("pk", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("transition_id", sa.String(400), nullable=False, unique=True),
        sa.Column("workflow_uid", sa.String(64), nullable=False),
        sa.Column("node_id", sa.String(300), nullable=True),
        sa.Column("from_phase", sa.String(32), nullable=True),
        sa.Column("to_phase", sa.String(32), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
    )
    op.create_index("ix_events_workflow_uid", "events", ["workflow_uid"])

    op.create_table(
        "templates",
        sa.Column("pk", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("namespace", sa.String(253), nullable=False),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.UniqueConstraint("kind", "namespace", "name", name="uq_templates_name"),
    )

    op.create_table(
        "artifacts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("workflow_uid", sa.String(64), nullable=False),
        sa.Column("node_id", sa.String(300), nullable=False),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("uri", sa.Text(), nullable=True),
        sa.Column("size", sa.Integer(), nullable=True),
        sa.Column("digest", sa.String(128), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_artifacts_workflow_uid", "artifacts", ["workflow_uid"])

    op.create_table(
        "artifact_consumers",
        sa.Column("pk", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "artifact_id", sa.Integer(),
            sa.ForeignKey("artifacts.id", ondelete="CASCADE"), nullable=False,
        ),
        sa.Column("workflow_uid", sa.String(64), nullable=False),
        sa.Column("node_id", sa.String(300), nullable=False),
    )
    op.create_index("ix_artifact_consumers_artifact_id", "artifact_consumers", ["artifact_id"])

    op.create_table(
        "cache_entries",
        sa.Column("pk", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("workflow_uid", sa.String(64), nullable=False),
        sa.Column("node_id", sa.String(300), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_cache_entries_key", "cache_entries", ["key"])

    op.create_table(
        "metrics",
        sa.Column("pk", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("workflow_uid", sa.String(64), nullable=False),
        sa.Column("node_id", sa.String(300), nullable=True),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
    )
    op.create_index("ix_metrics_workflow_uid", "metrics", ["workflow_uid"])

    op.create_table(
        "leases",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(253), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "leases", "metrics", "cache_entries", "artifact_consumers", "artifacts",
        "templates", "events", "nodes", "workflows",
    ):
        op.drop_table(table)
