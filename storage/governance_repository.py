"""Repository functions for governance: server policy and rules, escalations, and the audit log.

A decision is a conditional update (`… WHERE state = 'pending'`): when two moderators click at
once, in one process or two, the database lets exactly one of them decide. Likewise at most one
escalation about a message is open (a unique index on its subject among pending rows), and each
person joins it once (a unique reporter row), however many processes take reports at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, delete, func, literal, select, update
from sqlalchemy.exc import IntegrityError

from storage.database import Database
from storage.models import AuditEntry, Escalation, EscalationReport, GuildRule, GuildSettings, utcnow

REPORTERS_SHOWN_CHARS = 900  # names kept on an escalation; the count goes on past them


async def get_guild_settings(db: Database, guild_id: int) -> GuildSettings:
    """The server's settings; a server that never changed them gets the defaults (not stored)."""
    async with db.session() as session:
        settings = await session.get(GuildSettings, guild_id)
    return settings if settings is not None else GuildSettings(guild_id=guild_id)


async def update_guild_settings(db: Database, guild_id: int, **values: Any) -> GuildSettings:
    async with db.session() as session:
        settings = await session.get(GuildSettings, guild_id, with_for_update=not db.is_sqlite)
        if settings is None:
            settings = GuildSettings(guild_id=guild_id)
            session.add(settings)
        for key, value in values.items():
            if not hasattr(settings, key):
                raise AttributeError(key)
            setattr(settings, key, value)
    return settings


async def list_guild_rules(db: Database, guild_id: int) -> list[GuildRule]:
    async with db.session() as session:
        result = await session.execute(select(GuildRule).where(GuildRule.guild_id == guild_id).order_by(GuildRule.id))
        return list(result.scalars())


async def add_guild_rule(
    db: Database, *, guild_id: int, kind: str, pattern: str, category: str, created_by_id: int
) -> GuildRule:
    rule = GuildRule(guild_id=guild_id, kind=kind, pattern=pattern, category=category, created_by_id=created_by_id)
    async with db.session() as session:
        session.add(rule)
    return rule


async def remove_guild_rule(db: Database, guild_id: int, rule_id: int) -> bool:
    async with db.session() as session:
        result = await session.execute(delete(GuildRule).where(GuildRule.guild_id == guild_id, GuildRule.id == rule_id))
        return result.rowcount == 1


async def create_escalation(
    db: Database, *, reporter: tuple[int, str] | None = None, **fields: Any
) -> Escalation | None:
    """Open an escalation (with the person who reported it, if any); None when one about the same
    subject is open already (then nothing is written)."""
    escalation = Escalation(**fields)
    if reporter is not None:
        escalation.reported_by_id = reporter[0]
        escalation.report_count = 1
        escalation.reporters = _shown_name(reporter[1])
    try:
        async with db.session() as session:
            session.add(escalation)
            if reporter is not None:
                await session.flush()
                session.add(
                    EscalationReport(
                        escalation_id=escalation.id or 0,
                        guild_id=escalation.guild_id,
                        reporter_id=reporter[0],
                        reporter_name=_shown_name(reporter[1]),
                    )
                )
    except IntegrityError:
        if escalation.subject is None:
            raise
        return None
    return escalation


async def open_escalation(db: Database, council_id: int, subject: str) -> Escalation | None:
    """The pending escalation about `subject` (a message) in a council, if there is one."""
    async with db.session() as session:
        result = await session.execute(
            select(Escalation).where(
                Escalation.council_id == council_id, Escalation.subject == subject, Escalation.state == "pending"
            )
        )
        return result.scalar_one_or_none()


async def has_reported(db: Database, escalation_id: int, reporter_id: int) -> bool:
    async with db.session() as session:
        result = await session.execute(
            select(EscalationReport.id).where(
                EscalationReport.escalation_id == escalation_id, EscalationReport.reporter_id == reporter_id
            )
        )
        return result.first() is not None


async def join_escalation(
    db: Database, escalation_id: int, *, guild_id: int, reporter_id: int, reporter_name: str
) -> Escalation | None:
    """Add one person's report to a pending escalation, in one transaction with its count and names;
    None (and nothing written) when it is no longer pending or they are on it already."""
    name = _shown_name(reporter_name)
    names = case(
        (Escalation.reporters == "", literal(name)),
        (func.length(Escalation.reporters) >= REPORTERS_SHOWN_CHARS, Escalation.reporters),
        else_=Escalation.reporters + ", " + literal(name),
    )
    try:
        async with db.session() as session:
            session.add(
                EscalationReport(
                    escalation_id=escalation_id, guild_id=guild_id, reporter_id=reporter_id, reporter_name=name
                )
            )
            await session.flush()
            result = await session.execute(
                update(Escalation)
                .where(Escalation.id == escalation_id, Escalation.state == "pending")
                .values(report_count=Escalation.report_count + 1, reporters=names)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:
                raise _NotOpen
    except (IntegrityError, _NotOpen):
        return None
    return await get_escalation(db, escalation_id)


class _NotOpen(Exception):
    """Rolls back a report on an escalation that was decided meanwhile."""


async def recent_reports(db: Database, guild_id: int, reporter_id: int, since: datetime) -> tuple[int, datetime | None]:
    """How many reports the person made in the server since `since`, and when the oldest of them was."""
    async with db.session() as session:
        result = await session.execute(
            select(func.count(EscalationReport.id), func.min(EscalationReport.created_at)).where(
                EscalationReport.guild_id == guild_id,
                EscalationReport.reporter_id == reporter_id,
                EscalationReport.created_at >= since,
            )
        )
        count, oldest = result.one()
    return int(count), oldest


def _shown_name(name: str) -> str:
    return " ".join(name.split())[:100]


async def get_escalation(db: Database, escalation_id: int) -> Escalation | None:
    async with db.session() as session:
        return await session.get(Escalation, escalation_id)


async def set_escalation_post(db: Database, escalation_id: int, channel_id: int, message_id: int) -> None:
    """Remember where the escalation was posted, so decisions can edit it."""
    async with db.session() as session:
        await session.execute(
            update(Escalation)
            .where(Escalation.id == escalation_id)
            .values(mod_channel_id=channel_id, mod_message_id=message_id)
        )


async def claim_escalation(
    db: Database,
    escalation_id: int,
    *,
    state: str,
    decided_by_id: int | None,
    decided_by_name: str,
    reason: str | None = None,
    end_council: bool = False,
) -> Escalation | None:
    """Decide a pending escalation; None when it was no longer pending (someone else decided first)."""
    async with db.session() as session:
        result = await session.execute(
            update(Escalation)
            .where(Escalation.id == escalation_id, Escalation.state == "pending")
            .values(
                state=state,
                decided_by_id=decided_by_id,
                decided_by_name=decided_by_name,
                decision_reason=reason,
                end_council=end_council,
                decided_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            return None
    return await get_escalation(db, escalation_id)


async def list_pending_escalations(db: Database, guild_id: int | None = None) -> list[Escalation]:
    query = select(Escalation).where(Escalation.state == "pending")
    if guild_id is not None:
        query = query.where(Escalation.guild_id == guild_id)
    async with db.session() as session:
        return list((await session.execute(query.order_by(Escalation.id))).scalars())


async def list_overdue_escalations(db: Database, now: datetime) -> list[Escalation]:
    query = select(Escalation).where(Escalation.state == "pending", Escalation.expires_at <= now)
    async with db.session() as session:
        return list((await session.execute(query.order_by(Escalation.id))).scalars())


async def add_audit(
    db: Database,
    *,
    guild_id: int,
    kind: str,
    actor_name: str,
    detail: str,
    actor_id: int | None = None,
    council_id: int | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        guild_id=guild_id, kind=kind, actor_id=actor_id, actor_name=actor_name, detail=detail, council_id=council_id
    )
    async with db.session() as session:
        session.add(entry)
    return entry


async def list_audit(
    db: Database, guild_id: int, *, council_id: int | None = None, limit: int = 20
) -> Sequence[AuditEntry]:
    """The newest entries first."""
    query = select(AuditEntry).where(AuditEntry.guild_id == guild_id)
    if council_id is not None:
        query = query.where(AuditEntry.council_id == council_id)
    async with db.session() as session:
        result = await session.execute(query.order_by(AuditEntry.id.desc()).limit(limit))
        return list(result.scalars())
