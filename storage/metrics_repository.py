"""Counts for the /metrics endpoint, each one query."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, text

from storage.database import Database
from storage.models import Council, CouncilMessage, Escalation


@dataclass(frozen=True, slots=True)
class Snapshot:
    councils_by_state: dict[str, int]
    member_turns: int
    tokens_in: int
    tokens_out: int
    escalations_pending: int


async def snapshot(db: Database) -> Snapshot:
    async with db.session() as session:
        states = dict((await session.execute(select(Council.state, func.count()).group_by(Council.state))).all())
        turns = (
            await session.execute(
                select(func.count()).select_from(CouncilMessage).where(CouncilMessage.author_kind == "ai")
            )
        ).scalar_one()
        tokens = (
            await session.execute(
                select(func.coalesce(func.sum(Council.tokens_in), 0), func.coalesce(func.sum(Council.tokens_out), 0))
            )
        ).one()
        pending = (
            await session.execute(select(func.count()).select_from(Escalation).where(Escalation.state == "pending"))
        ).scalar_one()
    return Snapshot(
        councils_by_state={str(k): int(v) for k, v in states.items()},
        member_turns=int(turns),
        tokens_in=int(tokens[0]),
        tokens_out=int(tokens[1]),
        escalations_pending=int(pending),
    )


async def database_answers(db: Database) -> bool:
    """Whether the database answers a trivial query right now."""
    try:
        async with db.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:  # any failure to answer is the answer
        return False
    return True
