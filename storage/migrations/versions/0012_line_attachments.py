"""Files humans share in a council thread, kept with their line (images as members are sent them)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 18:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("council_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attachment_count", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "line_attachment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("council_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("filename", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("media_type", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=True),
        sa.Column("shared_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["council_id"], ["council.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["message_id"], ["council_message.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_line_attachment_council_id", "line_attachment", ["council_id"])
    op.create_index("ix_line_attachment_message_id", "line_attachment", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_line_attachment_message_id", table_name="line_attachment")
    op.drop_index("ix_line_attachment_council_id", table_name="line_attachment")
    op.drop_table("line_attachment")
    with op.batch_alter_table("council_message", schema=None) as batch_op:
        batch_op.drop_column("attachment_count")
