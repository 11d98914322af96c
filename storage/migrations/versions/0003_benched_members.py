"""Members that failed too many turns in a row are benched

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 14:21:11.871739
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("council_member", schema=None) as batch_op:
        batch_op.add_column(sa.Column("benched", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("council_member", schema=None) as batch_op:
        batch_op.drop_column("benched")
