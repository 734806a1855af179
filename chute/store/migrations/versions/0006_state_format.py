"""``state_format`` on workflows: the replay format of a run's recorded state
(chute.engine.state_format); every row written before is format 1 (chute 0.1.0).

Revision ID: 0006_state_format
Revises: 0005_resume_values
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_state_format"
down_revision = "0005_resume_values"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workflows") as batch:
        batch.add_column(sa.Column("state_format", sa.Integer(), nullable=False,
                                   server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("workflows") as batch:
        batch.drop_column("state_format")
