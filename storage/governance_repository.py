"""Repository functions for governance: server policy and rules, escalations, and the audit log.

A decision is a conditional update (`… WHERE state = 'pending'`): when two moderators click at
once, in one process or two, the database lets exactly one of them decide.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update

from storage.database import Database
from storage.models import AuditEntry, Escalation, GuildRule, GuildSettings, utcnow


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


async def create_escalation(db: Database, **fields: Any) -> Escalation:
    escalation = Escalation(**fields)
    async with db.session() as session:
        session.add(escalation)
    return escalation


async def get_escalation(db: Database, escalation_id: int) -> Escalation | None:
    async with db.session() as session:
        return await session.get(Escalation, escalation_id)


async def pending_escalation_for_message(db: Database, message_id: int) -> Escalation | None:
    async with db.session() as session:
        result = await session.execute(
            select(Escalation).where(Escalation.message_id == message_id, Escalation.state == "pending")
        )
        return result.scalars().first()


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
