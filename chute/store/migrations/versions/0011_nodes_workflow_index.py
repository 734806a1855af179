"""Drop ``ix_nodes_workflow_uid``: ``uq_nodes_wf_node (workflow_uid, node_id)`` starts with
the same column, so it answers every lookup by workflow (SQLite and PostgreSQL use an
index's leading column), while the redundant index cost each node insert one more B-tree
(and, on SQLite, one more WAL page in the controller's per-turn commit).

Revision ID: 0011_nodes_workflow_index
Revises: 0010_workflow_lease_index
"""

from alembic import op

revision = "0011_nodes_workflow_index"
down_revision = "0010_workflow_lease_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_nodes_workflow_uid", table_name="nodes")


def downgrade() -> None:
    op.create_index("ix_nodes_workflow_uid", "nodes", ["workflow_uid"])
