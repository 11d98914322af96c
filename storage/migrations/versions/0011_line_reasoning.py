"""A member's reasoning for a line, kept apart from its words (shown only on request)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 17:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("council_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reasoning", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("council_message", schema=None) as batch_op:
        batch_op.drop_column("reasoning")
