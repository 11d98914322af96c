"""Repository functions for reports on one council: its escalations and its audit entries, oldest first."""

from __future__ import annotations

from sqlalchemy import select

from storage.database import Database
from storage.models import AuditEntry, Escalation


async def council_escalations(db: Database, council_id: int) -> list[Escalation]:
    """Every escalation about the council, whatever its state, in the order they were raised."""
    query = select(Escalation).where(Escalation.council_id == council_id).order_by(Escalation.id)
    async with db.session() as session:
        return list((await session.execute(query)).scalars())


async def council_audit(db: Database, guild_id: int, council_id: int) -> list[AuditEntry]:
    """Every audit entry recorded for the council in its server, oldest first (no limit: exports are whole)."""
    query = (
        select(AuditEntry)
        .where(AuditEntry.guild_id == guild_id, AuditEntry.council_id == council_id)
        .order_by(AuditEntry.id)
    )
    async with db.session() as session:
        return list((await session.execute(query)).scalars())
