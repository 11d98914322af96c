"""Repository functions for reports on one council: its escalations and audit entries, oldest first, and
how many lines its members and humans wrote."""

from __future__ import annotations

from sqlalchemy import func, select

from storage.database import Database
from storage.models import AuditEntry, CouncilMessage, Escalation


async def line_counts(db: Database, council_id: int) -> tuple[int, int]:
    """(member lines, human lines): every member line but those kept for the record only (review
    ballots), and every human line."""
    query = (
        select(CouncilMessage.author_kind, func.count())
        .where(
            CouncilMessage.council_id == council_id,
            ((CouncilMessage.author_kind == "ai") & (CouncilMessage.visibility != "record"))
            | (CouncilMessage.author_kind == "human"),
        )
        .group_by(CouncilMessage.author_kind)
    )
    async with db.session() as session:
        counts: dict[str, int] = {kind: count for kind, count in await session.execute(query)}
    return counts.get("ai", 0), counts.get("human", 0)


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
