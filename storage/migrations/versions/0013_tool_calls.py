"""Tools members call during their turns (MCP), each stored before it runs

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 20:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("council", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tools", sa.Text(), nullable=True))
    op.create_table(
        "tool_call",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("council_id", sa.Integer(), nullable=False),
        sa.Column("turn_key", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("member", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("call_id", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("server", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("tool", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("exposed_name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("arguments", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("signed", sa.Text(), nullable=False),
        sa.Column("policy", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("repeatable", sa.Boolean(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("is_error", sa.Boolean(), nullable=False),
        sa.Column("result_held", sa.Boolean(), nullable=False),
        sa.Column("failure", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("line_id", sa.Integer(), nullable=True),
        sa.Column("escalation_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["council_id"], ["council.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("council_id", "turn_key", "step", "position", name="uq_tool_call_step"),
    )
    op.create_index("ix_tool_call_council_id", "tool_call", ["council_id"])
    op.create_index("ix_tool_call_status", "tool_call", ["status"])


def downgrade() -> None:
    op.drop_index("ix_tool_call_status", table_name="tool_call")
    op.drop_index("ix_tool_call_council_id", table_name="tool_call")
    op.drop_table("tool_call")
    with op.batch_alter_table("council", schema=None) as batch_op:
        batch_op.drop_column("tools")
