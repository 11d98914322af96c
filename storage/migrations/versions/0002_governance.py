"""Governance: escalations, audit log, server rules and policy, message visibility.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 13:48:05.702097
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("council_id", sa.Integer(), nullable=True),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("actor_id", sa.BigInteger(), nullable=True),
        sa.Column("actor_name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_council_id"), ["council_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_guild_id"), ["guild_id"], unique=False)

    op.create_table(
        "guild_rule",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("pattern", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("created_by_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("guild_rule", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_guild_rule_guild_id"), ["guild_id"], unique=False)

    op.create_table(
        "escalation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("council_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("author_name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("spoiler", sa.Boolean(), nullable=False),
        sa.Column("held", sa.Boolean(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("decided_by_id", sa.BigInteger(), nullable=True),
        sa.Column("decided_by_name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("end_council", sa.Boolean(), nullable=False),
        sa.Column("reported_by_id", sa.BigInteger(), nullable=True),
        sa.Column("mod_channel_id", sa.BigInteger(), nullable=True),
        sa.Column("mod_message_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["council_id"], ["council.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["message_id"], ["council_message.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("escalation", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_escalation_council_id"), ["council_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_escalation_guild_id"), ["guild_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_escalation_state"), ["state"], unique=False)

    with op.batch_alter_table("council_message", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "visibility", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False, server_default="visible"
            )
        )

    with op.batch_alter_table("guild_settings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("policy_mode", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False, server_default="hold")
        )
        batch_op.add_column(sa.Column("disabled_categories", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("judge_member", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column("escalation_timeout_s", sa.Integer(), nullable=False, server_default="86400"))
        batch_op.add_column(sa.Column("halted", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("guild_settings", schema=None) as batch_op:
        batch_op.drop_column("halted")
        batch_op.drop_column("escalation_timeout_s")
        batch_op.drop_column("judge_member")
        batch_op.drop_column("disabled_categories")
        batch_op.drop_column("policy_mode")

    with op.batch_alter_table("council_message", schema=None) as batch_op:
        batch_op.drop_column("visibility")

    with op.batch_alter_table("escalation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_escalation_state"))
        batch_op.drop_index(batch_op.f("ix_escalation_guild_id"))
        batch_op.drop_index(batch_op.f("ix_escalation_council_id"))

    op.drop_table("escalation")
    with op.batch_alter_table("guild_rule", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_guild_rule_guild_id"))

    op.drop_table("guild_rule")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_guild_id"))
        batch_op.drop_index(batch_op.f("ix_audit_log_council_id"))

    op.drop_table("audit_log")
