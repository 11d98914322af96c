"""Storage for how councils deliberate: modes, seats that change, review ballots, humans' requests."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from storage.database import Database
from storage.models import Council, CouncilMember, CouncilMessage, ReviewBallot


async def set_mode(db: Database, council_id: int, mode: str) -> bool:
    async with db.session() as session:
        result = await session.execute(update(Council).where(Council.id == council_id).values(mode=mode))
        return result.rowcount == 1


async def seat_member(db: Database, council_id: int, name: str, role: str | None) -> bool:
    """Seat a member after the council began: a new seat at the end, or back in the seat it was dismissed from.
    False if it is seated already."""
    async with db.session() as session:
        existing = (
            await session.execute(
                select(CouncilMember).where(CouncilMember.council_id == council_id, CouncilMember.name == name)
            )
        ).scalar_one_or_none()
        if existing is not None:
            result = await session.execute(
                update(CouncilMember)
                .where(CouncilMember.id == existing.id, CouncilMember.dismissed.is_(True))
                .values(dismissed=False, benched=False, role=role if role is not None else existing.role)
            )
            return result.rowcount == 1
        last = (
            await session.execute(
                select(func.max(CouncilMember.position)).where(CouncilMember.council_id == council_id)
            )
        ).scalar_one()
        session.add(CouncilMember(council_id=council_id, name=name, role=role, position=(last or 0) + 1))
    return True


async def dismiss_member(db: Database, council_id: int, name: str) -> bool:
    async with db.session() as session:
        result = await session.execute(
            update(CouncilMember)
            .where(
                CouncilMember.council_id == council_id,
                CouncilMember.name == name,
                CouncilMember.dismissed.is_(False),
            )
            .values(dismissed=True)
        )
        return result.rowcount == 1


async def tokens_by_author(db: Database, council_id: int) -> dict[str, tuple[int, int]]:
    """{author name: (input tokens, output tokens)} over every line that cost tokens."""
    query = (
        select(CouncilMessage.author_name, func.sum(CouncilMessage.tokens_in), func.sum(CouncilMessage.tokens_out))
        .where(CouncilMessage.council_id == council_id, (CouncilMessage.tokens_in + CouncilMessage.tokens_out) > 0)
        .group_by(CouncilMessage.author_name)
    )
    async with db.session() as session:
        return {name: (int(t_in or 0), int(t_out or 0)) for name, t_in, t_out in await session.execute(query)}


async def open_requests(db: Database, council_id: int) -> list[CouncilMessage]:
    """Humans' visible lines addressed to a member that the member has not answered yet, oldest first."""
    async with db.session() as session:
        asked = list(
            (
                await session.execute(
                    select(CouncilMessage)
                    .where(
                        CouncilMessage.council_id == council_id,
                        CouncilMessage.author_kind == "human",
                        CouncilMessage.addressed_to.is_not(None),
                        CouncilMessage.visibility == "visible",
                    )
                    .order_by(CouncilMessage.id)
                )
            ).scalars()
        )
        if not asked:
            return []
        answered = set(
            (
                await session.execute(
                    select(CouncilMessage.turn_key).where(
                        CouncilMessage.council_id == council_id,
                        CouncilMessage.turn_key.like("ai:reply:%") | CouncilMessage.turn_key.like("failed:reply:%"),
                    )
                )
            ).scalars()
        )
    return [
        line for line in asked if f"ai:reply:{line.id}" not in answered and f"failed:reply:{line.id}" not in answered
    ]


async def open_ballot(
    db: Database, *, council_id: int, round_number: int, reviewer: str, seed: str, labels: str
) -> ReviewBallot:
    """The reviewer's ballot for the round, created (state `asked`) on first call."""
    try:
        async with db.session() as session:
            ballot = ReviewBallot(
                council_id=council_id, round=round_number, reviewer=reviewer, seed=seed, labels=labels
            )
            session.add(ballot)
        return ballot
    except IntegrityError:
        async with db.session() as session:
            result = await session.execute(
                select(ReviewBallot).where(
                    ReviewBallot.council_id == council_id,
                    ReviewBallot.round == round_number,
                    ReviewBallot.reviewer == reviewer,
                )
            )
            return result.scalar_one()


async def close_ballot(db: Database, ballot_id: int | None, *, state: str, ranking: str | None) -> None:
    async with db.session() as session:
        await session.execute(
            update(ReviewBallot)
            .where(ReviewBallot.id == ballot_id, ReviewBallot.state == "asked")
            .values(state=state, ranking=ranking)
        )


async def list_ballots(db: Database, council_id: int, round_number: int | None = None) -> list[ReviewBallot]:
    query = select(ReviewBallot).where(ReviewBallot.council_id == council_id)
    if round_number is not None:
        query = query.where(ReviewBallot.round == round_number)
    async with db.session() as session:
        return list((await session.execute(query.order_by(ReviewBallot.id))).scalars())
