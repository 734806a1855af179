"""Triggers: stored CronWorkflows with their scheduler's progress, and webhook triggers.

- ``cron_workflows``: one row per CronWorkflow; ``last_scheduled_at`` is Argo's
  ``status.lastScheduledTime``, ``checked_through`` the instant up to which every slot
  was decided (RELIABILITY D-3: a restart neither repeats nor skips a slot).
- ``webhooks``: WebhookTrigger resources, deliveries to ``/webhooks/<name>``.

Revision ID: 0008_triggers
Revises: 0007_claims_idempotency
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_triggers"
down_revision = "0007_claims_idempotency"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cron_workflows",
        sa.Column("uid", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(253), nullable=False, unique=True),
        sa.Column("namespace", sa.String(253), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("last_scheduled_at", sa.Float(), nullable=True),
        sa.Column("checked_through", sa.Float(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
    )
    op.create_table(
        "webhooks",
        sa.Column("name", sa.String(253), primary_key=True),
        sa.Column("namespace", sa.String(253), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("webhooks")
    op.drop_table("cron_workflows")
