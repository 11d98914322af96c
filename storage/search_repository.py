"""Repository functions for looking back at a server's councils: the lines that mention some words, and one
council's record with its conclusion. Both cover only what the reader may read (`ReadableCouncils`), and of
that only what its thread shows: no held, withheld, private or record-only line, no line being written."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import regex
from sqlalchemy import ColumnElement, case, func, select

from storage.database import Database
from storage.models import Council, CouncilMember, CouncilMessage
from storage.report_repository import ReadableCouncils
from storage.template_repository import MINUTES_TURN_KEY

HITS_PER_COUNCIL = 3  # so one long council cannot crowd the others out of a search
SNIPPET_CHARS = 300
SNIPPET_LEAD = 100  # of those, before the match: what leads up to it
CONCLUSION_CHARS = 6_000
LIKE_ESCAPE = "\\"


@dataclass(frozen=True, slots=True)
class SearchHit:
    council_id: int
    topic: str
    state: str
    created_at: datetime
    round: int
    author_name: str
    author_kind: str  # ai (a member's turn, a synthesis, minutes) | human
    snippet: str  # about SNIPPET_CHARS of the line around its first match, whitespace flattened


@dataclass(frozen=True, slots=True)
class ConcludingLine:
    author_name: str
    round: int
    content: str  # clipped so the whole conclusion stays within CONCLUSION_CHARS


@dataclass(frozen=True, slots=True)
class CouncilRecord:
    council_id: int
    topic: str
    state: str
    created_at: datetime
    ended_at: datetime | None
    mode: str
    rounds: int
    end_reason: str | None
    members: tuple[CouncilMember, ...]  # in seat order, dismissed and benched ones included
    minutes: bool  # the conclusion is the session's minutes; else the final round's member lines
    conclusion: tuple[ConcludingLine, ...]  # oldest first; empty when no member spoke


def _shown() -> ColumnElement[bool]:
    """Lines every reader of the thread sees: members' turns (syntheses and minutes among them) and humans'
    words. Not the bot's notices, nor its lines showing tool calls (author_kind "tool"): their results may
    quote other councils, which must not travel further than their own readers."""
    return (CouncilMessage.visibility == "visible") & CouncilMessage.author_kind.in_(("ai", "human"))


def _member_turn() -> ColumnElement[bool]:
    return (
        (CouncilMessage.visibility == "visible")
        & (CouncilMessage.author_kind == "ai")
        & CouncilMessage.turn_key.like("ai:%")
    )


def like_pattern(query: str) -> str:
    """`query` as a LIKE pattern matching it literally anywhere in a text."""
    escaped = (
        query.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%").replace("_", LIKE_ESCAPE + "_")
    )
    return f"%{escaped}%"


async def search_lines(
    db: Database,
    guild_id: int,
    readable: ReadableCouncils,
    query: str,
    *,
    exclude_council_id: int | None,
    limit: int,
) -> list[SearchHit]:
    """The shown lines of the server's readable councils containing `query` (case-insensitively), newest
    council first, at most HITS_PER_COUNCIL per council and `limit` in all; a council's minutes and
    syntheses come before its turns, then its turns in the order they were said."""
    # PostgreSQL's text cannot hold NUL, so no line there contains one (and a pattern with one is refused).
    if limit <= 0 or "\x00" in query:
        return []
    where = [
        Council.guild_id == guild_id,
        readable.clause(),
        _shown(),
        # ilike is ILIKE on PostgreSQL, which folds case by the database's locale; on SQLite it is
        # lower() LIKE lower(), and both fold ASCII letters only there, so "É" does not find "é".
        CouncilMessage.content.ilike(like_pattern(query), escape=LIKE_ESCAPE),
    ]
    if exclude_council_id is not None:
        where.append(Council.id != exclude_council_id)
    conclusions_first = case(
        (CouncilMessage.turn_key == MINUTES_TURN_KEY, 0),
        (CouncilMessage.turn_key.like("ai:synthesis:%"), 1),
        else_=2,
    )
    matches = (
        select(
            CouncilMessage.id.label("line_id"),
            func.row_number()
            .over(partition_by=CouncilMessage.council_id, order_by=(conclusions_first, CouncilMessage.id))
            .label("place"),
        )
        .join(Council, Council.id == CouncilMessage.council_id)
        .where(*where)
        .subquery()
    )
    rows = (
        select(
            Council.id,
            Council.topic,
            Council.state,
            Council.created_at,
            CouncilMessage.round,
            CouncilMessage.author_name,
            CouncilMessage.author_kind,
            CouncilMessage.content,
        )
        .join(matches, matches.c.line_id == CouncilMessage.id)
        .join(Council, Council.id == CouncilMessage.council_id)
        .where(matches.c.place <= HITS_PER_COUNCIL)
        .order_by(Council.created_at.desc(), Council.id.desc(), matches.c.place)
        .limit(limit)
    )
    async with db.session() as session:
        found = (await session.execute(rows)).all()
    return [
        SearchHit(council_id, topic, state, created_at, round_number, author_name, author_kind, snippet(content, query))
        for council_id, topic, state, created_at, round_number, author_name, author_kind, content in found
    ]


async def council_record(
    db: Database, guild_id: int, readable: ReadableCouncils, council_id: int
) -> CouncilRecord | None:
    """The council's record and conclusion, or None when it is not one of the server's councils the reader
    may read (which of the two is not said: that would tell a council exists)."""
    if not 0 < council_id < 2**31:  # no such id: the column is 32 bits, and PostgreSQL refuses a wider value
        return None
    async with db.session() as session:
        council = (
            await session.execute(
                select(Council).where(Council.id == council_id, Council.guild_id == guild_id, readable.clause())
            )
        ).scalar_one_or_none()
        if council is None:
            return None
        members = (
            await session.execute(
                select(CouncilMember).where(CouncilMember.council_id == council_id).order_by(CouncilMember.position)
            )
        ).scalars()
        minutes = (
            await session.execute(
                select(CouncilMessage).where(
                    CouncilMessage.council_id == council_id,
                    CouncilMessage.turn_key == MINUTES_TURN_KEY,
                    CouncilMessage.author_kind == "ai",
                    CouncilMessage.visibility == "visible",
                )
            )
        ).scalar_one_or_none()
        if minutes is not None:
            last_lines = [minutes]
        else:
            of_council = (CouncilMessage.council_id == council_id) & _member_turn()
            final_round = select(func.max(CouncilMessage.round)).where(of_council).scalar_subquery()
            last_lines = list(
                (
                    await session.execute(
                        select(CouncilMessage)
                        .where(of_council, CouncilMessage.round == final_round)
                        .order_by(CouncilMessage.id.desc())
                        .limit(20)  # more would not fit CONCLUSION_CHARS anyway
                    )
                ).scalars()
            )
    return CouncilRecord(
        council_id=council_id,
        topic=council.topic,
        state=council.state,
        created_at=council.created_at,
        ended_at=council.ended_at,
        mode=council.mode,
        rounds=council.rounds,
        end_reason=council.end_reason,
        members=tuple(members),
        minutes=minutes is not None,
        conclusion=_within_budget(last_lines, CONCLUSION_CHARS),
    )


def _within_budget(newest_first: list[CouncilMessage], budget: int) -> tuple[ConcludingLine, ...]:
    """The newest lines that fit in `budget` characters, oldest first: the last words conclude; the one that
    overflows is clipped, unless too little room is left for it to say anything."""
    kept: list[ConcludingLine] = []
    for line in newest_first:
        content = line.content if len(line.content) <= budget else clip(line.content, budget)
        if len(content) < min(200, len(line.content)):
            break
        kept.append(ConcludingLine(line.author_name, line.round, content))
        budget -= len(content)
        if budget <= 0:
            break
    return tuple(reversed(kept))


def clip(text: str, size: int) -> str:
    """At most `size` characters of the text's beginning, cut between graphemes, with "…" if cut."""
    if len(text) <= size:
        return text
    end = 0
    for cluster in regex.finditer(r"\X", text):
        if cluster.end() > size - 1:
            break
        end = cluster.end()
    return text[:end] + "…"


def snippet(content: str, query: str, size: int = SNIPPET_CHARS) -> str:
    """About `size` characters of `content` around the first match of `query`, cut between graphemes,
    with "…" where it was cut, and its whitespace flattened so the snippet is one line."""
    # Full case folding finds the match SQL found; where the database folds differently (its locale), the
    # snippet falls back to the line's beginning rather than guess.
    found = regex.search(regex.escape(query), content, regex.IGNORECASE | regex.V1)
    start, end = (found.start(), found.end()) if found else (0, 0)
    if len(content) <= size:
        return _flat(content)
    begin = max(0, min(start - SNIPPET_LEAD, len(content) - size))
    finish = max(begin + size, end)
    cut_begin, cut_finish = _grapheme_bounds(content, begin, finish)
    if cut_finish - cut_begin > 2 * size:  # a cluster of hundreds of combining marks: bounded beats whole
        cut_begin, cut_finish = begin, finish
    return (
        ("…" if cut_begin > 0 else "")
        + _flat(content[cut_begin:cut_finish])
        + ("…" if cut_finish < len(content) else "")
    )


def _grapheme_bounds(text: str, begin: int, finish: int) -> tuple[int, int]:
    """(begin, finish) widened to whole graphemes."""
    cut_begin, cut_finish = 0, len(text)
    for cluster in regex.finditer(r"\X", text):
        if cluster.start() <= begin:
            cut_begin = cluster.start()
        if cluster.end() >= finish:
            cut_finish = cluster.end()
            break
    return cut_begin, cut_finish


def _flat(text: str) -> str:
    return " ".join(text.split())
