"""Poll triggers: DataTrigger and MetricTrigger resources with their watermark.

- ``poll_triggers``: one row per trigger; ``state`` is how far it got (the newest object
  time seen, the last metric row looked at), ``polled_at`` when it last looked.

Revision ID: 0009_poll_triggers
Revises: 0008_triggers
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_poll_triggers"
down_revision = "0008_triggers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "poll_triggers",
        sa.Column("name", sa.String(253), primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("namespace", sa.String(253), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("polled_at", sa.Float(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("poll_triggers")
