"""Repository functions for peer ratings: one rater's rows per round, a round's rows, and the server's scoreboard.

A round is named by the newest member turn it rates (`as_of_message_id`). The server scoreboard counts
each ended council once, by its latest round: a round taken while a council ran is provisional.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Float, and_, cast, func, select, update
from sqlalchemy.exc import IntegrityError

from storage.database import Database
from storage.models import Council, CouncilMessage, PeerRating
from storage.report_repository import ReadableCouncils

SCOREBOARD_VISIBILITY = "scoreboard"  # a stored scoreboard: shown as embeds, in no prompt, never posted as text
ENDED_STATES = ("concluded", "failed")


@dataclass(frozen=True, slots=True)
class MemberAggregate:
    """One member's standing across a server's rated councils."""

    name: str
    councils: int  # councils in which others rated it
    ratings: int  # readable ratings behind the means
    clarity: float
    insight: float
    self_awareness: float

    @property
    def overall(self) -> float:
        return (self.clarity + self.insight + self.self_awareness) / 3


async def store_rater_ratings(
    db: Database, council_id: int, rows: Sequence[PeerRating], *, tokens_in: int = 0, tokens_out: int = 0
) -> bool:
    """Store one rater's rows of a round together, and add the call's tokens to the council's totals in the
    same transaction; False if the rater's rows were stored already (a resumed or racing round)."""
    try:
        async with db.session() as session:
            session.add_all(rows)
            if tokens_in or tokens_out:
                await session.execute(
                    update(Council)
                    .where(Council.id == council_id)
                    .values(tokens_in=Council.tokens_in + tokens_in, tokens_out=Council.tokens_out + tokens_out)
                )
        return True
    except IntegrityError:
        return False


async def round_ratings(db: Database, council_id: int, as_of_message_id: int) -> list[PeerRating]:
    query = (
        select(PeerRating)
        .where(PeerRating.council_id == council_id, PeerRating.as_of_message_id == as_of_message_id)
        .order_by(PeerRating.id)
    )
    async with db.session() as session:
        return list((await session.execute(query)).scalars())


async def raters_in_round(db: Database, council_id: int, as_of_message_id: int) -> set[str]:
    """Members whose answer (or failure) in the round is stored: a resumed round does not ask them again."""
    query = (
        select(PeerRating.rater)
        .where(PeerRating.council_id == council_id, PeerRating.as_of_message_id == as_of_message_id)
        .distinct()
    )
    async with db.session() as session:
        return set((await session.execute(query)).scalars())


async def round_number(db: Database, council_id: int, as_of_message_id: int) -> int:
    """The round's place among the council's rating rounds, counting from 1."""
    query = select(func.count(func.distinct(PeerRating.as_of_message_id))).where(
        PeerRating.council_id == council_id, PeerRating.as_of_message_id <= as_of_message_id
    )
    async with db.session() as session:
        return (await session.execute(query)).scalar_one()


async def unposted_scoreboards(db: Database) -> list[CouncilMessage]:
    """Scoreboards stored but not (known to be) posted: a stop came between the two."""
    query = (
        select(CouncilMessage)
        .where(CouncilMessage.visibility == SCOREBOARD_VISIBILITY, CouncilMessage.discord_message_ids == "")
        .order_by(CouncilMessage.id)
    )
    async with db.session() as session:
        return list((await session.execute(query)).scalars())


async def server_scoreboard(
    db: Database, guild_id: int, *, readable: ReadableCouncils | None = None
) -> list[MemberAggregate]:
    """Every rated member of the server's ended councils, best overall first; each council counts by its
    latest rating round, and only readable ratings count. Given `readable`, only the councils one person
    may read count at all: the means, and how many ratings and councils stand behind them."""
    within = [] if readable is None else [readable.clause()]
    latest = (
        select(PeerRating.council_id, func.max(PeerRating.as_of_message_id).label("as_of"))
        .join(Council, Council.id == PeerRating.council_id)
        .where(PeerRating.guild_id == guild_id, Council.state.in_(ENDED_STATES), *within)
        .group_by(PeerRating.council_id)
        .subquery()
    )
    clarity = func.avg(cast(PeerRating.clarity, Float))
    insight = func.avg(cast(PeerRating.insight, Float))
    awareness = func.avg(cast(PeerRating.self_awareness, Float))
    query = (
        select(
            PeerRating.ratee,
            func.count(func.distinct(PeerRating.council_id)),
            func.count(PeerRating.id),
            clarity,
            insight,
            awareness,
        )
        .join(
            latest,
            and_(latest.c.council_id == PeerRating.council_id, latest.c.as_of == PeerRating.as_of_message_id),
        )
        .where(PeerRating.status == "rated")
        .group_by(PeerRating.ratee)
    )
    async with db.session() as session:
        rows = (await session.execute(query)).all()
    board = [
        MemberAggregate(name, councils, ratings, float(c), float(i), float(s))
        for name, councils, ratings, c, i, s in rows
    ]
    board.sort(key=lambda m: (-m.overall, -m.ratings, m.name.casefold()))
    return board
