"""Repository functions: the only place that reads and writes council data.

State changes are conditional updates (`UPDATE … WHERE state IN …`), so two callers racing on
the same council cannot both win, whatever process they run in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, bindparam, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import defer

from storage.database import Database
from storage.models import AppState, Council, CouncilMember, CouncilMessage, LineAttachment, utcnow

# States in which a council still has a future: it may run again without being convened anew.
ACTIVE_STATES = ("running", "paused", "held", "halted")


async def create_council(
    db: Database,
    *,
    guild_id: int,
    channel_id: int,
    topic: str,
    mode: str,
    rounds: int,
    convener_id: int,
    convener_name: str,
    members: Sequence[tuple[str, str | None]],
    chair: str | None = None,
    max_tokens: int | None = None,
    max_cost: float | None = None,
    template_id: int | None = None,  # templates: the permanent council this is a session of
    language: str | None = None,
    tools: str | None = None,
) -> Council:
    """Create a council in state `starting` with its members seated in the given order."""
    async with db.session() as session:
        council = Council(
            chair=chair,
            max_tokens=max_tokens,
            max_cost=max_cost,
            guild_id=guild_id,
            channel_id=channel_id,
            topic=topic,
            mode=mode,
            rounds=rounds,
            state="starting",
            convener_id=convener_id,
            convener_name=convener_name,
            template_id=template_id,
            language=language,
            tools=tools,
        )
        session.add(council)
        await session.flush()
        for position, (name, role) in enumerate(members):
            session.add(CouncilMember(council_id=council.id, name=name, role=role, position=position))
    return council


async def delete_unstarted_council(db: Database, council_id: int) -> bool:
    """Remove a council that never got its thread (convening failed or was cut short): it never was.
    Only a council still `starting` without a thread is removed; its seats go with it."""
    async with db.session() as session:
        starting = (Council.id == council_id) & (Council.state == "starting") & Council.thread_id.is_(None)
        if (await session.execute(select(Council.id).where(starting))).scalar_one_or_none() is None:
            return False
        await session.execute(delete(CouncilMember).where(CouncilMember.council_id == council_id))
        result = await session.execute(delete(Council).where(starting).execution_options(synchronize_session=False))
        return result.rowcount == 1


async def get_council(db: Database, council_id: int) -> Council | None:
    async with db.session() as session:
        return await session.get(Council, council_id)


@dataclass(frozen=True, slots=True)
class TranscriptMark:
    """How many lines a council's transcript has and the newest one's id: lines are never deleted, so
    an unchanged mark means no line was added since (bot/council/transcript_view.py)."""

    lines: int
    last_id: int


# The statements every council turn runs, built once: building one and its cache key costs more than
# running it on SQLite (about 0.1-0.2 ms each).
_OF_COUNCIL = CouncilMessage.council_id == bindparam("council_id")
_COUNCIL_MARKED = select(
    Council,
    select(func.count(CouncilMessage.id)).where(_OF_COUNCIL).scalar_subquery(),
    select(func.coalesce(func.max(CouncilMessage.id), 0)).where(_OF_COUNCIL).scalar_subquery(),
).where(Council.id == bindparam("council_id"))
_ADD_TOKENS = (
    update(Council)
    .where(Council.id == bindparam("council_id"))
    .values(tokens_in=Council.tokens_in + bindparam("more_in"), tokens_out=Council.tokens_out + bindparam("more_out"))
)
_RECORD_POSTED = (
    update(CouncilMessage)
    .where(CouncilMessage.id == bindparam("message_id"))
    .values(discord_message_ids=bindparam("shown_in"), posted_at=bindparam("shown_at"))
)


async def get_council_marked(db: Database, council_id: int) -> tuple[Council, TranscriptMark] | None:
    """The council and its transcript's mark, read in one statement."""
    async with db.session() as session:
        row = (await session.execute(_COUNCIL_MARKED, {"council_id": council_id})).one_or_none()
    if row is None:
        return None
    return row[0], TranscriptMark(row[1], row[2])


async def get_council_by_thread(db: Database, thread_id: int) -> Council | None:
    async with db.session() as session:
        result = await session.execute(select(Council).where(Council.thread_id == thread_id))
        return result.scalar_one_or_none()


async def set_council_thread(db: Database, council_id: int, thread_id: int) -> None:
    async with db.session() as session:
        await session.execute(update(Council).where(Council.id == council_id).values(thread_id=thread_id))


async def list_councils_in_state(db: Database, states: Iterable[str]) -> list[Council]:
    async with db.session() as session:
        result = await session.execute(select(Council).where(Council.state.in_(tuple(states))).order_by(Council.id))
        return list(result.scalars())


async def transition_council(
    db: Database, council_id: int, *, from_states: Iterable[str], to_state: str, reason: str | None = None
) -> bool:
    """Move a council to `to_state` if it is in one of `from_states`; True when this call made the change."""
    values: dict[str, object] = {"state": to_state}
    if to_state in ("concluded", "failed"):
        values.update(ended_at=utcnow(), end_reason=reason)
    async with db.session() as session:
        result = await session.execute(
            update(Council)
            .where(Council.id == council_id, Council.state.in_(tuple(from_states)))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1


async def set_current_round(db: Database, council_id: int, round_number: int) -> None:
    async with db.session() as session:
        await session.execute(update(Council).where(Council.id == council_id).values(current_round=round_number))


async def list_members(db: Database, council_id: int) -> list[CouncilMember]:
    async with db.session() as session:
        result = await session.execute(
            select(CouncilMember).where(CouncilMember.council_id == council_id).order_by(CouncilMember.position)
        )
        return list(result.scalars())


async def bench_member(db: Database, council_id: int, name: str) -> bool:
    async with db.session() as session:
        result = await session.execute(
            update(CouncilMember)
            .where(CouncilMember.council_id == council_id, CouncilMember.name == name, CouncilMember.benched.is_(False))
            .values(benched=True)
        )
        return result.rowcount == 1


async def recent_turn_keys(db: Database, council_id: int, name: str, limit: int) -> list[str]:
    """The member's latest turn outcomes, newest first: `ai:…` for an answer, `failed:…` for a failure."""
    query = (
        select(CouncilMessage.turn_key)
        .where(
            CouncilMessage.council_id == council_id,
            CouncilMessage.author_name == name,
            CouncilMessage.turn_key.like("ai:%") | CouncilMessage.turn_key.like("failed:%"),
        )
        .order_by(CouncilMessage.id.desc())
        .limit(limit)
    )
    async with db.session() as session:
        return list((await session.execute(query)).scalars())


async def set_member_role(db: Database, council_id: int, name: str, role: str | None) -> bool:
    async with db.session() as session:
        result = await session.execute(
            update(CouncilMember)
            .where(CouncilMember.council_id == council_id, CouncilMember.name == name)
            .values(role=role)
        )
        return result.rowcount == 1


async def add_message(
    db: Database,
    *,
    council_id: int,
    round_number: int,
    author_kind: str,
    author_name: str,
    turn_key: str,
    content: str,
    author_id: int | None = None,
    tokens_in: int = 0,
    tokens_out: int = 0,
    visibility: str = "visible",
    latency_ms: int | None = None,
    addressed_to: str | None = None,
    claimed_by: str = "",
    reasoning: str | None = None,
    attachments: Sequence[LineAttachment] = (),
) -> tuple[CouncilMessage, bool]:
    """Store a transcript line once per `turn_key`; returns (the row, whether this call created it).

    Its tokens are added to the council's totals in the same transaction, so a line and its cost
    are recorded together or not at all. `claimed_by` claims the posting of a line this call creates
    (see `claim_post`) in the same statement: the writer of a line is the one that posts it.
    """
    message = CouncilMessage(
        claimed_by=claimed_by,
        claimed_at=utcnow() if claimed_by else None,
        council_id=council_id,
        round=round_number,
        author_kind=author_kind,
        author_name=author_name,
        author_id=author_id,
        turn_key=turn_key,
        content=content,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        visibility=visibility,
        latency_ms=latency_ms,
        addressed_to=addressed_to,
        reasoning=reasoning or None,
        attachment_count=len(attachments),
    )
    try:
        async with db.session() as session:
            session.add(message)
            if attachments:  # stored with the line or not at all
                await session.flush()
                for attachment in attachments:
                    attachment.council_id, attachment.message_id = council_id, message.id  # type: ignore[assignment]
                    session.add(attachment)
            if tokens_in or tokens_out:
                await session.execute(
                    _ADD_TOKENS, {"council_id": council_id, "more_in": tokens_in, "more_out": tokens_out}
                )
        return message, True
    except IntegrityError:
        existing = await get_message_by_turn(db, council_id, turn_key)
        if existing is None:
            raise
        return existing, False


async def get_message_by_turn(db: Database, council_id: int, turn_key: str) -> CouncilMessage | None:
    async with db.session() as session:
        result = await session.execute(
            select(CouncilMessage).where(CouncilMessage.council_id == council_id, CouncilMessage.turn_key == turn_key)
        )
        return result.scalar_one_or_none()


async def record_posted(db: Database, message_id: int, discord_message_ids: Sequence[int]) -> None:
    """Remember which Discord messages carry a transcript line, so it is never posted twice.

    Not a durable commit (see Database.session): the line itself was stored durably before it was posted,
    and should a power loss undo this note, the line counts as claimed by a process that is gone, so the
    next start posts it `recovering`, looking in the thread first, as after a crash between post and note.
    """
    async with db.session(durable=False) as session:
        await session.execute(
            _RECORD_POSTED,
            {
                "message_id": message_id,
                "shown_in": ",".join(str(i) for i in discord_message_ids),
                "shown_at": utcnow(),
            },
        )


async def save_post_progress(db: Database, message_id: int, discord_message_ids: Sequence[int]) -> None:
    """The messages of a line posted so far, while the rest is still to go out: a retry or a restart posts
    only the rest. Not durable, like `record_posted` (a lost note is made good by looking in the thread)."""
    async with db.session(durable=False) as session:
        await session.execute(
            update(CouncilMessage)
            .where(CouncilMessage.id == message_id, CouncilMessage.posted_at.is_(None))
            .values(discord_message_ids=",".join(str(i) for i in discord_message_ids))
        )


@dataclass(frozen=True, slots=True)
class PostClaim:
    """The outcome of `claim_post`."""

    won: bool  # this claimant, and no one else, may post the line now
    took_over: bool = False  # from another claimant, stale or gone, which may have posted it before it stopped


async def claim_post(
    db: Database, message_id: int, claimant: str, *, stale_before: datetime, gone: Callable[[str], bool]
) -> PostClaim:
    """Claim the posting of a line not yet posted (`posted_at` unset): it is won when the line is
    unclaimed or this claimant's already, or taken over when its claim is older than `stale_before` or
    `gone(claimant)` says its claimant's process has ended. Conditional UPDATEs, so of two processes
    racing for a line exactly one wins."""
    unposted = (CouncilMessage.id == message_id) & CouncilMessage.posted_at.is_(None)
    async with db.session() as session:
        result = await session.execute(
            update(CouncilMessage)
            .where(unposted, CouncilMessage.claimed_by.in_(("", claimant)))
            .values(claimed_by=claimant, claimed_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            return PostClaim(won=True)
        row = (
            await session.execute(select(CouncilMessage.claimed_by, CouncilMessage.claimed_at).where(unposted))
        ).one_or_none()
        if row is None:
            return PostClaim(won=False)  # posted already
        holder, since = row
        if since is not None and _aware(since) >= stale_before and not gone(holder):
            return PostClaim(won=False)
        since_matches = CouncilMessage.claimed_at.is_(None) if since is None else CouncilMessage.claimed_at == since
        result = await session.execute(
            update(CouncilMessage)
            .where(unposted, CouncilMessage.claimed_by == holder, since_matches)
            .values(claimed_by=claimant, claimed_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return PostClaim(won=result.rowcount == 1, took_over=result.rowcount == 1)


async def release_claims(db: Database, claimant: str) -> None:
    """A stopping process lets go of the lines it claimed and did not post: another takes them over at
    once (as from a stopped claimant: it looks in the thread first, in case a post got out)."""
    async with db.session() as session:
        await session.execute(
            update(CouncilMessage)
            .where(CouncilMessage.claimed_by == claimant, CouncilMessage.posted_at.is_(None))
            .values(claimed_at=None)
        )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)  # SQLite returns naive UTC


async def save_stream_progress(db: Database, message_id: int, content: str, discord_message_ids: Sequence[int]) -> None:
    """What a streaming line shows so far, and where: a crash leaves exactly that in the database.
    Each save renews the streamer's claim on the line, so a long reply is not taken for abandoned."""
    async with db.session() as session:
        await session.execute(
            update(CouncilMessage)
            .where(CouncilMessage.id == message_id, CouncilMessage.visibility == "streaming")
            .values(
                content=content, discord_message_ids=",".join(str(i) for i in discord_message_ids), claimed_at=utcnow()
            )
        )


async def complete_stream(
    db: Database,
    message: CouncilMessage,
    *,
    content: str,
    visibility: str = "visible",
    tokens_in: int = 0,
    tokens_out: int = 0,
    discord_message_ids: Sequence[int] | None = None,
    latency_ms: int | None = None,
    reasoning: str | None = None,
) -> bool:
    """Store a streamed line's final words (or its words and the cut note); False if it was no longer
    streaming. It stays unconfirmed (`posted_at` unset) until `record_posted`, so a restart in between
    shows the final words. Tokens go to the council's totals in the same transaction, as in add_message."""
    values: dict[str, object] = {
        "content": content,
        "visibility": visibility,
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "claimed_at": utcnow(),
    }
    if latency_ms is not None:
        values["latency_ms"] = latency_ms
    if reasoning:
        values["reasoning"] = reasoning
    if discord_message_ids is not None:
        values["discord_message_ids"] = ",".join(str(i) for i in discord_message_ids)
    async with db.session() as session:
        result = await session.execute(
            update(CouncilMessage)
            .where(CouncilMessage.id == message.id, CouncilMessage.visibility == "streaming")
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            return False
        if tokens_in or tokens_out:
            await session.execute(
                update(Council)
                .where(Council.id == message.council_id)
                .values(tokens_in=Council.tokens_in + tokens_in, tokens_out=Council.tokens_out + tokens_out)
            )
    for key, value in values.items():
        setattr(message, key, value)
    return True


async def councils_with_unfinished_streams(db: Database) -> list[int]:
    """Councils with a streamed line a stopped process left half-shown or unconfirmed (see `unfinished_streams`)."""
    async with db.session() as session:
        result = await session.execute(
            select(CouncilMessage.council_id).where(_unfinished_stream()).distinct().order_by(CouncilMessage.council_id)
        )
        return list(result.scalars())


async def unfinished_streams(db: Database, council_id: int) -> list[CouncilMessage]:
    """The council's streamed lines still `streaming`, or final but not confirmed in Discord
    (visible, message ids recorded, `posted_at` unset), oldest first. A member's long reply whose posting
    stopped between its messages looks the same, and is finished the same way."""
    async with db.session() as session:
        result = await session.execute(
            select(CouncilMessage)
            .where(CouncilMessage.council_id == council_id, _unfinished_stream())
            .order_by(CouncilMessage.id)
        )
        return list(result.scalars())


def _unfinished_stream() -> ColumnElement[bool]:
    return (CouncilMessage.visibility == "streaming") | (
        (CouncilMessage.visibility == "visible")
        & (CouncilMessage.author_kind == "ai")
        & CouncilMessage.posted_at.is_(None)
        & (CouncilMessage.discord_message_ids != "")
    )


async def transcript(db: Database, council_id: int, *, up_to_id: int | None = None) -> list[CouncilMessage]:
    """The council's lines in the order they were written, optionally only those up to a message id."""
    query = select(CouncilMessage).where(CouncilMessage.council_id == council_id)
    if up_to_id is not None:
        query = query.where(CouncilMessage.id <= up_to_id)
    async with db.session() as session:
        result = await session.execute(query.order_by(CouncilMessage.id))
        return list(result.scalars())


async def newest_discord_id(db: Database, council_id: int) -> int | None:
    """The newest Discord message id any line of the council is known to be shown in (or to be, for humans)."""
    async with db.session() as session:
        result = await session.execute(
            select(CouncilMessage.discord_message_ids).where(
                CouncilMessage.council_id == council_id, CouncilMessage.discord_message_ids != ""
            )
        )
        ids = [int(part) for joined in result.scalars() for part in joined.split(",") if part]
    return max(ids, default=None)


async def recorded_human_messages(db: Database, council_id: int, message_ids: Sequence[int]) -> set[int]:
    """Which of these Discord messages are stored already as the council's human lines."""
    if not message_ids:
        return set()
    keys = [f"human:{message_id}" for message_id in message_ids]
    async with db.session() as session:
        result = await session.execute(
            select(CouncilMessage.turn_key).where(
                CouncilMessage.council_id == council_id, CouncilMessage.turn_key.in_(keys)
            )
        )
        return {int(key.removeprefix("human:")) for key in result.scalars()}


async def last_message_id(db: Database, council_id: int) -> int:
    async with db.session() as session:
        result = await session.execute(
            select(func.max(CouncilMessage.id)).where(CouncilMessage.council_id == council_id)
        )
        return result.scalar_one() or 0


async def get_message(db: Database, message_id: int) -> CouncilMessage | None:
    async with db.session() as session:
        return await session.get(CouncilMessage, message_id)


async def find_message_by_discord_id(db: Database, council_id: int, discord_id: int) -> CouncilMessage | None:
    """The transcript line a Discord message belongs to (a long reply spans several Discord messages)."""
    padded = "," + CouncilMessage.discord_message_ids + ","
    async with db.session() as session:
        result = await session.execute(
            select(CouncilMessage).where(CouncilMessage.council_id == council_id, padded.contains(f",{discord_id},"))
        )
        return result.scalars().first()


async def set_message_visibility(db: Database, message_id: int, visibility: str) -> None:
    async with db.session() as session:
        await session.execute(
            update(CouncilMessage).where(CouncilMessage.id == message_id).values(visibility=visibility)
        )


async def count_active_councils(db: Database, guild_id: int, convener_id: int | None = None) -> int:
    query = select(func.count(Council.id)).where(
        Council.guild_id == guild_id, Council.state.in_(("starting", *ACTIVE_STATES))
    )
    if convener_id is not None:
        query = query.where(Council.convener_id == convener_id)
    async with db.session() as session:
        return (await session.execute(query)).scalar_one()


async def count_convenes_since(db: Database, guild_id: int, convener_id: int, since: datetime) -> int:
    query = select(func.count(Council.id)).where(
        Council.guild_id == guild_id, Council.convener_id == convener_id, Council.created_at >= since
    )
    async with db.session() as session:
        return (await session.execute(query)).scalar_one()


async def list_guild_councils(db: Database, guild_id: int, states: Iterable[str]) -> list[Council]:
    query = select(Council).where(Council.guild_id == guild_id, Council.state.in_(tuple(states))).order_by(Council.id)
    async with db.session() as session:
        return list((await session.execute(query)).scalars())


async def get_state_value(db: Database, key: str) -> str | None:
    async with db.session() as session:
        row = await session.get(AppState, key)
        return row.value if row else None


async def set_state_value(db: Database, key: str, value: str) -> None:
    async with db.session() as session:
        row = await session.get(AppState, key)
        if row is None:
            session.add(AppState(key=key, value=value))
        else:
            row.value = value


async def images_of(db: Database, council_id: int, message_ids: Sequence[int]) -> dict[int, list[LineAttachment]]:
    """The images shared with these lines, by line, in the order they were shared."""
    if not message_ids:
        return {}
    query = (
        select(LineAttachment)
        .where(
            LineAttachment.council_id == council_id,
            LineAttachment.message_id.in_(list(message_ids)),  # type: ignore[attr-defined]
            LineAttachment.kind == "image",
        )
        .order_by(LineAttachment.id)
    )
    found: dict[int, list[LineAttachment]] = {}
    async with db.session() as session:
        for row in (await session.execute(query)).scalars():
            found.setdefault(row.message_id, []).append(row)
    return found


async def attachments_of(db: Database, council_id: int) -> list[LineAttachment]:
    """Every file shared in the council, oldest first (for the export: names, sizes, who shared them)."""
    query = (
        select(LineAttachment)
        .where(LineAttachment.council_id == council_id)
        .order_by(LineAttachment.id)
        .options(defer(LineAttachment.data))  # type: ignore[arg-type]  # names and sizes, not the bytes
    )
    async with db.session() as session:
        return list((await session.execute(query)).scalars())
