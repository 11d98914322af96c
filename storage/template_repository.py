"""Repository functions for council templates (permanent councils), their sessions and their minutes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, delete, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from storage.database import Database
from storage.models import Council, CouncilMessage, CouncilTemplate, CouncilTemplateMember, utcnow
from storage.report_repository import ReadableCouncils

# The transcript line holding a session's closing minutes (or the notice that there are none).
MINUTES_TURN_KEY = "minutes"


class TemplateExists(Exception):
    """A template of that name (in any case) exists in the server and replacing it was not asked for."""

    def __init__(self, existing: CouncilTemplate) -> None:
        super().__init__(existing.name)
        self.existing = existing


@dataclass(frozen=True, slots=True)
class StoredTemplate:
    template: CouncilTemplate
    members: tuple[CouncilTemplateMember, ...]
    sessions: int  # councils convened from it


@dataclass(frozen=True, slots=True)
class SessionMinutes:
    council: Council
    minutes: CouncilMessage


def _within(readable: ReadableCouncils | None) -> list[ColumnElement[bool]]:
    return [] if readable is None else [readable.clause()]


def name_key(name: str) -> str:
    return name.casefold()


def _named(guild_id: int, name: str) -> Select[tuple[CouncilTemplate]]:
    """The server's template of that name, whatever its case."""
    return select(CouncilTemplate).where(
        CouncilTemplate.guild_id == guild_id, CouncilTemplate.name_key == name_key(name)
    )


async def save_template(
    db: Database,
    *,
    guild_id: int,
    name: str,
    mode: str,
    rounds: int,
    members: Sequence[tuple[str, str | None]],
    chair: str | None = None,
    max_tokens: int | None = None,
    max_cost: float | None = None,
    created_by_id: int,
    created_by_name: str,
    replace: bool = False,
) -> tuple[CouncilTemplate, bool]:
    """Store a template; (the row, whether it replaced one). An existing name raises TemplateExists unless
    `replace`; a replaced template keeps its id, creator and sessions, so its memory carries on."""
    try:
        async with db.session() as session:
            existing = (await session.execute(_named(guild_id, name))).scalar_one_or_none()
            if existing is not None and not replace:
                session.expunge(existing)  # kept readable: the rollback would expire it
                raise TemplateExists(existing)
            if existing is None:
                template = CouncilTemplate(
                    guild_id=guild_id,
                    name=name,
                    name_key=name_key(name),
                    mode=mode,
                    rounds=rounds,
                    chair=chair,
                    max_tokens=max_tokens,
                    max_cost=max_cost,
                    created_by_id=created_by_id,
                    created_by_name=created_by_name,
                )
                session.add(template)
                await session.flush()
            else:
                template = existing
                template.name, template.mode, template.rounds, template.updated_at = name, mode, rounds, utcnow()
                template.chair, template.max_tokens, template.max_cost = chair, max_tokens, max_cost
                await session.execute(
                    delete(CouncilTemplateMember).where(CouncilTemplateMember.template_id == template.id)
                )
            for position, (member, role) in enumerate(members):
                session.add(CouncilTemplateMember(template_id=template.id, name=member, role=role, position=position))
    except IntegrityError:
        # Someone saved the same name at the same moment: theirs stands.
        raced = await get_template(db, guild_id, name)
        if raced is None:
            raise
        raise TemplateExists(raced.template) from None
    return template, existing is not None


async def get_template(db: Database, guild_id: int, name: str) -> StoredTemplate | None:
    """The server's template of that name, whatever its case, with its members in seat order."""
    async with db.session() as session:
        template = (await session.execute(_named(guild_id, name))).scalar_one_or_none()
        if template is None:
            return None
        members = (
            await session.execute(
                select(CouncilTemplateMember)
                .where(CouncilTemplateMember.template_id == template.id)
                .order_by(CouncilTemplateMember.position)
            )
        ).scalars()
        sessions = (
            await session.execute(select(func.count(Council.id)).where(Council.template_id == template.id))
        ).scalar_one()
        return StoredTemplate(template, tuple(members), sessions)


async def list_templates(
    db: Database, guild_id: int, *, readable: ReadableCouncils | None = None
) -> list[StoredTemplate]:
    """The server's templates by name, with their members and how many sessions each has had (of those
    sessions, only the `readable` ones when given)."""
    async with db.session() as session:
        templates = list(
            (
                await session.execute(
                    select(CouncilTemplate)
                    .where(CouncilTemplate.guild_id == guild_id)
                    .order_by(CouncilTemplate.name_key)
                )
            ).scalars()
        )
        ids = [t.id for t in templates]
        members = list(
            (
                await session.execute(
                    select(CouncilTemplateMember)
                    .where(CouncilTemplateMember.template_id.in_(ids))
                    .order_by(CouncilTemplateMember.template_id, CouncilTemplateMember.position)
                )
            ).scalars()
        )
        counts = dict(
            (
                await session.execute(
                    select(Council.template_id, func.count(Council.id))
                    .where(Council.template_id.in_(ids), *_within(readable))
                    .group_by(Council.template_id)
                )
            ).all()
        )
    return [
        StoredTemplate(t, tuple(m for m in members if m.template_id == t.id), counts.get(t.id, 0)) for t in templates
    ]


async def template_name(db: Database, template_id: int) -> str | None:
    async with db.session() as session:
        template = await session.get(CouncilTemplate, template_id)
        return template.name if template is not None else None


async def template_names(db: Database, guild_id: int) -> list[str]:
    async with db.session() as session:
        result = await session.execute(
            select(CouncilTemplate.name).where(CouncilTemplate.guild_id == guild_id).order_by(CouncilTemplate.name_key)
        )
        return list(result.scalars())


async def delete_template(db: Database, template_id: int) -> bool:
    """Delete a template and its members; its councils stay, no longer sessions of anything."""
    async with db.session() as session:
        await session.execute(update(Council).where(Council.template_id == template_id).values(template_id=None))
        result = await session.execute(delete(CouncilTemplate).where(CouncilTemplate.id == template_id))
        return result.rowcount == 1


async def list_sessions(
    db: Database,
    guild_id: int,
    *,
    template_id: int | None = None,
    limit: int = 20,
    readable: ReadableCouncils | None = None,
) -> tuple[list[Council], int]:
    """(the newest `limit` councils of the server, or of one template, newest first; how many there are),
    counting only the `readable` councils when given."""
    where = [Council.guild_id == guild_id, *_within(readable)]
    if template_id is not None:
        where.append(Council.template_id == template_id)
    async with db.session() as session:
        councils = (
            await session.execute(select(Council).where(*where).order_by(Council.id.desc()).limit(limit))
        ).scalars()
        total = (await session.execute(select(func.count(Council.id)).where(*where))).scalar_one()
        return list(councils), total


async def previous_minutes(db: Database, template_id: int, before_council_id: int, limit: int) -> list[SessionMinutes]:
    """The shown minutes of a template's sessions before the given council and held in the same channel,
    newest first. Members read them and may repeat them: minutes of a session held where fewer people can
    look (a staff-only channel) must not reach a session others can read."""
    this_session = aliased(Council)
    same_channel = select(this_session.channel_id).where(this_session.id == before_council_id).scalar_subquery()
    query = (
        select(Council, CouncilMessage)
        .join(CouncilMessage, CouncilMessage.council_id == Council.id)
        .where(
            Council.template_id == template_id,
            Council.id < before_council_id,
            Council.channel_id == same_channel,
            CouncilMessage.turn_key == MINUTES_TURN_KEY,
            CouncilMessage.author_kind == "ai",
            CouncilMessage.visibility == "visible",
        )
        .order_by(Council.id.desc())
        .limit(limit)
    )
    async with db.session() as session:
        return [SessionMinutes(council, message) for council, message in (await session.execute(query)).all()]


async def sessions_awaiting_minutes(db: Database, ended_since: datetime) -> list[Council]:
    """Template sessions concluded since `ended_since` with at least one member turn whose minutes were
    never stored, or stored and not yet shown (the process stopped in between)."""
    minutes_done = exists().where(
        CouncilMessage.council_id == Council.id,
        CouncilMessage.turn_key == MINUTES_TURN_KEY,
        (CouncilMessage.visibility != "visible") | (CouncilMessage.discord_message_ids != ""),
    )
    spoke = exists().where(
        CouncilMessage.council_id == Council.id,
        CouncilMessage.author_kind == "ai",
        CouncilMessage.turn_key.like("ai:%"),
        CouncilMessage.visibility == "visible",
    )
    query = (
        select(Council)
        .where(
            Council.template_id.is_not(None),
            Council.state == "concluded",
            Council.thread_id.is_not(None),
            Council.ended_at >= ended_since,
            spoke,
            ~minutes_done,
        )
        .order_by(Council.id)
    )
    async with db.session() as session:
        return list((await session.execute(query)).scalars())
