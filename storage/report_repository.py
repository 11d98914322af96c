"""Repository functions for reports on one council: its escalations and audit entries, oldest first, and
how many lines its members and humans wrote; and which of a server's councils one person may read."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import ColumnElement, false, func, select

from storage.database import Database
from storage.models import AuditEntry, Council, CouncilMessage, Escalation


@dataclass(frozen=True, slots=True)
class ReadableCouncils:
    """The councils one person may read, named by where they are held: every council in `channels`, except
    those whose thread is in `hidden_threads` (private threads the person is not in). Lists filter by it in
    the query, so their limits and counts cover only what the person may see."""

    channels: frozenset[int]
    hidden_threads: frozenset[int] = frozenset()

    def clause(self) -> ColumnElement[bool]:
        if not self.channels:
            return false()
        condition = Council.channel_id.in_(sorted(self.channels))
        if self.hidden_threads:
            # NOT IN is never true for a NULL thread: a council without a thread is judged by its channel.
            condition &= Council.thread_id.is_(None) | Council.thread_id.not_in(sorted(self.hidden_threads))
        return condition


async def council_channels(db: Database, guild_id: int) -> set[int]:
    """The channels the server's councils were convened in (a handful, however many councils)."""
    query = select(Council.channel_id).where(Council.guild_id == guild_id).distinct()
    async with db.session() as session:
        return set((await session.execute(query)).scalars())


async def council_threads_among(db: Database, guild_id: int, thread_ids: Collection[int]) -> set[int]:
    """Which of these threads hold one of the server's councils."""
    if not thread_ids:
        return set()
    query = select(Council.thread_id).where(Council.guild_id == guild_id, Council.thread_id.in_(sorted(thread_ids)))
    async with db.session() as session:
        return {thread_id for thread_id in (await session.execute(query)).scalars() if thread_id is not None}


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


async def posted_member_lines(db: Database) -> int:
    """Member replies shown in full across every council (their final words confirmed in Discord)."""
    query = select(func.count(CouncilMessage.id)).where(
        CouncilMessage.author_kind == "ai",
        CouncilMessage.visibility == "visible",
        CouncilMessage.posted_at.is_not(None),
        CouncilMessage.turn_key.like("ai:%"),
    )
    async with db.session() as session:
        return (await session.execute(query)).scalar_one()


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
