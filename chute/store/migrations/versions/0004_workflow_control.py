"""Workflow control on workflows: ``shutdown`` (Argo's spec.shutdown: Stop or Terminate)
and ``resumed_at`` (when ``chute resume`` last asked suspend nodes to go on).

Revision ID: 0004_workflow_control
Revises: 0003_registry
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_workflow_control"
down_revision = "0003_registry"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workflows") as batch:
        batch.add_column(sa.Column("shutdown", sa.String(32), nullable=True))
        batch.add_column(sa.Column("resumed_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workflows") as batch:
        batch.drop_column("resumed_at")
        batch.drop_column("shutdown")
