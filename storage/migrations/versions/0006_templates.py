"""Council templates (permanent councils) and the template each council is a session of

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 10:02:41.118203
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "council_template",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("name_key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("mode", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("rounds", sa.Integer(), nullable=False),
        sa.Column("chair", sa.String(length=64), nullable=True),
        sa.Column("max_tokens", sa.Integer(), nullable=True),
        sa.Column("max_cost", sa.Float(), nullable=True),
        sa.Column("created_by_id", sa.BigInteger(), nullable=False),
        sa.Column("created_by_name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("guild_id", "name_key", name="uq_council_template_name"),
    )
    with op.batch_alter_table("council_template", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_council_template_guild_id"), ["guild_id"], unique=False)

    op.create_table(
        "council_template_member",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["template_id"], ["council_template.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("template_id", "name", name="uq_council_template_member_name"),
    )
    with op.batch_alter_table("council_template_member", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_council_template_member_template_id"), ["template_id"], unique=False)

    # A plain nullable column: SQLite adds it in place, without rebuilding `council` (see models.Council).
    with op.batch_alter_table("council", schema=None) as batch_op:
        batch_op.add_column(sa.Column("template_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_council_template_id"), ["template_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("council", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_council_template_id"))
        batch_op.drop_column("template_id")
    with op.batch_alter_table("council_template_member", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_council_template_member_template_id"))
    op.drop_table("council_template_member")
    with op.batch_alter_table("council_template", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_council_template_guild_id"))
    op.drop_table("council_template")
