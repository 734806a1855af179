"""``resume_values`` on workflows: the output values ``chute resume -p name=value``
supplies to the workflow's suspend nodes (Argo's intermediate parameters).

Revision ID: 0005_resume_values
Revises: 0004_workflow_control
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_resume_values"
down_revision = "0004_workflow_control"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workflows") as batch:
        batch.add_column(sa.Column("resume_values", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workflows") as batch:
        batch.drop_column("resume_values")
