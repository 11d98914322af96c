"""Deliberation: chair, limits, strategies' records, invited and dismissed members, turn latency

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 16:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("council", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chair", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("max_tokens", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("max_cost", sa.Float(), nullable=True))
    with op.batch_alter_table("council_member", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dismissed", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("council_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("latency_ms", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("addressed_to", sa.String(length=64), nullable=True))
    op.create_table(
        "review_ballot",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("council_id", sa.Integer(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("reviewer", sa.String(length=64), nullable=False),
        sa.Column("seed", sa.String(length=64), nullable=False),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.Column("ranking", sa.Text(), nullable=True),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["council_id"], ["council.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("council_id", "round", "reviewer", name="uq_review_ballot_reviewer"),
    )
    with op.batch_alter_table("review_ballot", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_review_ballot_council_id"), ["council_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("review_ballot", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_ballot_council_id"))
    op.drop_table("review_ballot")
    with op.batch_alter_table("council_message", schema=None) as batch_op:
        batch_op.drop_column("addressed_to")
        batch_op.drop_column("latency_ms")
    with op.batch_alter_table("council_member", schema=None) as batch_op:
        batch_op.drop_column("dismissed")
    with op.batch_alter_table("council", schema=None) as batch_op:
        batch_op.drop_column("max_cost")
        batch_op.drop_column("max_tokens")
        batch_op.drop_column("chair")
