"""Model registry tables: models and their versions.

Revision ID: 0003_registry
Revises: 0002_server
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_registry"
down_revision = "0002_server"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(253), nullable=False, unique=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "model_versions",
        sa.Column("pk", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.Integer(),
                  sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("data_digests", sa.JSON(), nullable=False),
        sa.Column("workflow_uid", sa.String(64), nullable=True),
        sa.Column("workflow_name", sa.String(253), nullable=True),
        sa.Column("node_id", sa.String(300), nullable=True),
        sa.Column("artifact_uri", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("stage_changed_at", sa.Float(), nullable=False),
        sa.UniqueConstraint("model_id", "version", name="uq_model_versions"),
    )
    op.create_index("ix_model_versions_model_stage", "model_versions", ["model_id", "stage"])
    op.create_index("ix_model_versions_workflow", "model_versions", ["workflow_uid"])


def downgrade() -> None:
    op.drop_index("ix_model_versions_workflow", table_name="model_versions")
    op.drop_index("ix_model_versions_model_stage", table_name="model_versions")
    op.drop_table("model_versions")
    op.drop_table("models")
