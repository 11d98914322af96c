"""The language a council's convener chose for it (none: the topic's, or the one people switch to)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 17:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("council", schema=None) as batch_op:
        batch_op.add_column(sa.Column("language", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("council", schema=None) as batch_op:
        batch_op.drop_column("language")
