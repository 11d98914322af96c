"""Each running council names the process that runs it, so a second process leaves it alone

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 17:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("council", schema=None) as batch_op:
        batch_op.add_column(sa.Column("runner", sa.String(length=200), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("runner_seen_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("council", schema=None) as batch_op:
        batch_op.drop_column("runner_seen_at")
        batch_op.drop_column("runner")
