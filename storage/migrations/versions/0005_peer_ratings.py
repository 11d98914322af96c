"""Peer ratings: members rate each other's contributions to a council

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 16:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "peer_rating",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("council_id", sa.Integer(), nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("as_of_message_id", sa.Integer(), nullable=False),
        sa.Column("rater", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("ratee", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("clarity", sa.Integer(), nullable=True),
        sa.Column("insight", sa.Integer(), nullable=True),
        sa.Column("self_awareness", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("reason_withheld", sa.Boolean(), nullable=False),
        sa.Column("raw_reply", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["council_id"], ["council.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("council_id", "as_of_message_id", "rater", "ratee", name="uq_peer_rating_round_pair"),
    )
    with op.batch_alter_table("peer_rating", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_peer_rating_council_id"), ["council_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_peer_rating_guild_id"), ["guild_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("peer_rating", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_peer_rating_guild_id"))
        batch_op.drop_index(batch_op.f("ix_peer_rating_council_id"))
    op.drop_table("peer_rating")
