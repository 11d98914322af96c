"""Peer-rating storage on SQLite and (with TEST_POSTGRES_URL) PostgreSQL: one write per rater and round,
and the server scoreboard's aggregate."""

from __future__ import annotations

import pytest

from storage import ratings_repository as ratings_repo
from storage import repository as repo
from storage.database import Database
from storage.models import Council, PeerRating
from tests.test_storage import BIG_ID

OTHER_GUILD = BIG_ID + 99


async def council(db: Database, *, guild_id: int = BIG_ID, state: str = "concluded") -> int:
    made = await repo.create_council(
        db,
        guild_id=guild_id,
        channel_id=1,
        topic="Topic",
        mode="round-robin",
        rounds=1,
        convener_id=2,
        convener_name="Ada",
        members=[("Claude", None), ("DeepSeek", None), ("Llama", None)],
    )
    assert made.id is not None
    await repo.transition_council(db, made.id, from_states=("starting",), to_state=state)
    return made.id


async def rate(
    db: Database,
    council_id: int,
    as_of: int,
    rater: str,
    scores: dict[str, tuple[int, int, int] | str],
    *,
    guild_id: int = BIG_ID,
) -> bool:
    """Store a rater's rows: scores, or a status ("unparseable" / "failed") for a ratee."""
    rows = [
        PeerRating(
            council_id=council_id,
            guild_id=guild_id,
            as_of_message_id=as_of,
            rater=rater,
            ratee=ratee,
            status=value,
            raw_reply="?",
        )
        if isinstance(value, str)
        else PeerRating(
            council_id=council_id,
            guild_id=guild_id,
            as_of_message_id=as_of,
            rater=rater,
            ratee=ratee,
            status="rated",
            clarity=value[0],
            insight=value[1],
            self_awareness=value[2],
            reason="ok",
        )
        for ratee, value in scores.items()
    ]
    return await ratings_repo.store_rater_ratings(db, council_id, rows, tokens_in=10, tokens_out=5)


async def test_a_raters_rows_are_stored_once_per_round_with_the_calls_tokens(db: Database) -> None:
    council_id = await council(db)
    assert await rate(db, council_id, 7, "Claude", {"DeepSeek": (4, 4, 4), "Llama": "unparseable"})
    assert not await rate(db, council_id, 7, "Claude", {"DeepSeek": (1, 1, 1), "Llama": (1, 1, 1)})
    assert await rate(db, council_id, 9, "Claude", {"DeepSeek": (2, 2, 2)})  # a later round
    assert await ratings_repo.raters_in_round(db, council_id, 7) == {"Claude"}
    assert [(r.ratee, r.status, r.clarity) for r in await ratings_repo.round_ratings(db, council_id, 7)] == [
        ("DeepSeek", "rated", 4),
        ("Llama", "unparseable", None),
    ]
    assert await ratings_repo.round_number(db, council_id, 7) == 1
    assert await ratings_repo.round_number(db, council_id, 9) == 2
    stored = await repo.get_council(db, council_id)
    assert stored is not None and (stored.tokens_in, stored.tokens_out) == (20, 10)  # the refused write added none


async def test_the_server_scoreboard_counts_each_ended_councils_latest_round(db: Database) -> None:
    first = await council(db)
    # An early round while it ran, then the round at its end: only the latest counts.
    await rate(db, first, 5, "DeepSeek", {"Claude": (1, 1, 1), "Llama": (1, 1, 1)})
    await rate(db, first, 8, "DeepSeek", {"Claude": (5, 4, 3), "Llama": (2, 2, 2)})
    await rate(db, first, 8, "Claude", {"DeepSeek": (3, 3, 3), "Llama": "unparseable"})
    await rate(db, first, 8, "Llama", {"Claude": "failed", "DeepSeek": "failed"})
    second = await council(db, state="failed")  # rated with /council rate after it failed
    await rate(db, second, 3, "DeepSeek", {"Claude": (3, 2, 1)})
    await rate(db, second, 3, "Claude", {"DeepSeek": (5, 5, 5)})
    running = await council(db, state="running")  # provisional: not counted
    await rate(db, running, 4, "DeepSeek", {"Claude": (1, 1, 1)})
    elsewhere = await council(db, guild_id=OTHER_GUILD)
    await rate(db, elsewhere, 2, "DeepSeek", {"Claude": (1, 1, 1)}, guild_id=OTHER_GUILD)

    board = await ratings_repo.server_scoreboard(db, BIG_ID)
    assert [(m.name, m.councils, m.ratings) for m in board] == [("DeepSeek", 2, 2), ("Claude", 2, 2), ("Llama", 1, 1)]
    deepseek, claude, llama = board
    assert (deepseek.clarity, deepseek.insight, deepseek.self_awareness, deepseek.overall) == (4.0, 4.0, 4.0, 4.0)
    assert (claude.clarity, claude.insight, claude.self_awareness) == (4.0, 3.0, 2.0)
    assert claude.overall == pytest.approx(3.0)
    assert llama.overall == pytest.approx(2.0)
    assert [m.name for m in await ratings_repo.server_scoreboard(db, OTHER_GUILD)] == ["Claude"]
    assert await ratings_repo.server_scoreboard(db, BIG_ID + 12345) == []


async def test_ratings_go_with_their_council(db: Database) -> None:
    council_id = await council(db)
    await rate(db, council_id, 1, "Claude", {"Llama": (4, 4, 4)})
    async with db.session() as session:
        stored = await session.get(Council, council_id)
        await session.delete(stored)
    assert await ratings_repo.round_ratings(db, council_id, 1) == []
