"""An index covering the workflow lease: the controller's per-turn fence reads it alone.

``ix_workflows_lease (uid, lease_owner, lease_expires_at)``: on SQLite a row's columns
after the submitted spec are reached only through the spec's overflow pages, so reading
the lease from the row cost the size of the spec on every commit (D-5); the index answers
the fence without touching the row.

Revision ID: 0010_workflow_lease_index
Revises: 0009_poll_triggers
"""

from alembic import op

revision = "0010_workflow_lease_index"
down_revision = "0009_poll_triggers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_workflows_lease", "workflows", ["uid", "lease_owner", "lease_expires_at"])


def downgrade() -> None:
    op.drop_index("ix_workflows_lease", table_name="workflows")
