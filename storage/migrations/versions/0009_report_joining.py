"""One open escalation per message, the people who reported it, and their recent reports

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

OPEN = sa.text("state = 'pending'")


def upgrade() -> None:
    with op.batch_alter_table("escalation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True))
        batch_op.add_column(sa.Column("report_count", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("reporters", sa.Text(), nullable=False, server_default=""))
    # Pending escalations about a stored line get its subject; when earlier duplicate reports left
    # several open about one line, the oldest is the one later reports join.
    op.execute(
        "UPDATE escalation SET subject = 'line:' || CAST(message_id AS VARCHAR(20)) "
        "WHERE state = 'pending' AND message_id IS NOT NULL AND id = ("
        "SELECT MIN(e.id) FROM escalation e WHERE e.state = 'pending' AND e.message_id = escalation.message_id)"
    )
    op.execute("UPDATE escalation SET report_count = 1 WHERE reported_by_id IS NOT NULL")
    op.create_index(
        "uq_escalation_open_subject",
        "escalation",
        ["council_id", "subject"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )
    op.create_table(
        "escalation_report",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("escalation_id", sa.Integer(), nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("reporter_id", sa.BigInteger(), nullable=False),
        sa.Column("reporter_name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["escalation_id"], ["escalation.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("escalation_id", "reporter_id", name="uq_escalation_report_reporter"),
    )
    op.create_index(
        "ix_escalation_report_reporter_recent", "escalation_report", ["guild_id", "reporter_id", "created_at"]
    )
    # Whoever reported before knows their report is in: reporting the same message again adds nothing.
    op.execute(
        "INSERT INTO escalation_report (escalation_id, guild_id, reporter_id, reporter_name, created_at) "
        "SELECT id, guild_id, reported_by_id, '', created_at FROM escalation WHERE reported_by_id IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_index("ix_escalation_report_reporter_recent", table_name="escalation_report")
    op.drop_table("escalation_report")
    op.drop_index("uq_escalation_open_subject", table_name="escalation")
    with op.batch_alter_table("escalation", schema=None) as batch_op:
        batch_op.drop_column("reporters")
        batch_op.drop_column("report_count")
        batch_op.drop_column("subject")
