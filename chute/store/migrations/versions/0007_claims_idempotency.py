"""Several controller workers, idempotent submission, and indexes for a long history.

- ``step_executions``: one row per launched pod attempt, unique on
  ``(workflow_uid, node_id, attempt)``: two controller workers can never both launch the
  same attempt (the second one's commit fails) — RELIABILITY D-2.
- ``workflows.idempotency_key`` (unique) and ``request_digest``: a submission replayed with
  the same key returns the run it created — D-3.
- ``ix_workflows_created_at`` and ``ix_workflows_phase_created``: newest-first listing and
  the controllers' claim query stay index scans with 100k finished runs — D-6.

Revision ID: 0007_claims_idempotency
Revises: 0006_state_format
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_claims_idempotency"
down_revision = "0006_state_format"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "step_executions",
        sa.Column("pk", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("workflow_uid", sa.String(64),
                  sa.ForeignKey("workflows.uid", ondelete="CASCADE"), nullable=False),
        sa.Column("node_id", sa.String(300), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("launched_at", sa.Float(), nullable=False),
        sa.UniqueConstraint("workflow_uid", "node_id", "attempt", name="uq_step_executions"),
    )
    with op.batch_alter_table("workflows") as batch:
        batch.add_column(sa.Column("idempotency_key", sa.String(255), nullable=True))
        batch.add_column(sa.Column("request_digest", sa.String(64), nullable=True))
    # a unique index, not a constraint: SQLite adds it without rebuilding the table
    op.create_index("ux_workflows_idempotency_key", "workflows", ["idempotency_key"],
                    unique=True)
    op.create_index("ix_workflows_created_at", "workflows", ["created_at"])
    op.create_index("ix_workflows_phase_created", "workflows", ["phase", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_workflows_phase_created", table_name="workflows")
    op.drop_index("ix_workflows_created_at", table_name="workflows")
    op.drop_index("ux_workflows_idempotency_key", table_name="workflows")
    with op.batch_alter_table("workflows") as batch:
        batch.drop_column("request_digest")
        batch.drop_column("idempotency_key")
    op.drop_table("step_executions")
