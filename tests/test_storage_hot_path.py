"""The storage calls of every council turn (bot/council/transcript_view.py, storage/database.py), on SQLite
and (with TEST_POSTGRES_URL) PostgreSQL: the council read with its transcript's mark, and relaxed commits."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from bot.council import transcript_view
from storage import repository as repo
from storage.database import Database
from storage.repository import TranscriptMark


async def new_council(db: Database) -> int:
    council = await repo.create_council(
        db,
        guild_id=1,
        channel_id=2,
        topic="Topic",
        mode="round-robin",
        rounds=2,
        convener_id=3,
        convener_name="Ada",
        members=[("Claude", None), ("Llama", None)],
    )
    assert council.id is not None
    return council.id


async def add_line(db: Database, council_id: int, key: str, **options: object) -> int:
    message, created = await repo.add_message(
        db,
        council_id=council_id,
        round_number=1,
        author_kind="ai",
        author_name="Claude",
        turn_key=key,
        content=f"words of {key}",
        **options,  # type: ignore[arg-type]
    )
    assert created and message.id is not None
    return message.id


async def test_the_mark_counts_the_councils_lines_and_names_the_newest(db: Database) -> None:
    council_id = await new_council(db)
    other_id = await new_council(db)
    found = await repo.get_council_marked(db, council_id)
    assert found is not None
    council, mark = found
    assert council.id == council_id and council.topic == "Topic"
    assert mark == TranscriptMark(0, 0)

    first = await add_line(db, council_id, "ai:r1:Claude", tokens_in=10, tokens_out=5)
    await add_line(db, other_id, "ai:r1:Claude")  # another council's line changes nothing here
    second = await add_line(db, council_id, "ai:r1:Llama", tokens_in=1, tokens_out=2)
    found = await repo.get_council_marked(db, council_id)
    assert found is not None
    council, mark = found
    assert mark == TranscriptMark(2, second) and first < second
    assert (council.tokens_in, council.tokens_out) == (11, 7)  # the token totals ride on the inserts

    # A changed line keeps the mark: whoever changes a line drops the view (moderation, streaming).
    await repo.record_posted(db, first, [99])
    found = await repo.get_council_marked(db, council_id)
    assert found is not None and found[1] == mark
    assert await repo.get_council_marked(db, 10**9) is None


async def test_a_posted_note_is_seen_at_once_by_every_pool(db: Database) -> None:
    council_id = await new_council(db)
    line = await add_line(db, council_id, "ai:r1:Claude")
    await repo.record_posted(db, line, [123, 456])
    twin = db.twin()
    try:
        for pool in (db, twin):
            stored = await repo.get_message(pool, line)
            assert stored is not None
            assert stored.discord_ids == [123, 456] and stored.posted_at is not None
    finally:
        await twin.close()


async def test_only_sessions_asked_to_be_relaxed_skip_the_wait_for_the_disk(db: Database) -> None:
    if db.is_sqlite:
        query, durable, relaxed = "PRAGMA synchronous", 2, 1  # FULL, NORMAL
    else:
        query, durable, relaxed = "SHOW synchronous_commit", "on", "off"
    async with db.session() as session:
        assert (await session.execute(text(query))).scalar_one() == durable
    async with db.session(durable=False) as session:
        assert (await session.execute(text(query))).scalar_one() == relaxed
    async with db.session() as session:  # the durable pool is untouched by the relaxed one
        assert (await session.execute(text(query))).scalar_one() == durable


async def test_a_running_councils_transcript_is_kept_in_memory_only_up_to_the_cap(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transcript_view, "KEEP_LINES", 3)
    views = transcript_view.TranscriptViews(db)
    council_id = await new_council(db)
    for key in ("a", "b", "c"):
        await add_line(db, council_id, key)
    mark = (await repo.get_council_marked(db, council_id))[1]  # type: ignore[index]
    views.marked(council_id, mark)
    kept = await views.lines(council_id, keep=True)
    views.marked(council_id, mark)
    assert await views.lines(council_id, keep=True) is kept  # answered from memory
    line, _ = await repo.add_message(
        db, council_id=council_id, round_number=1, author_kind="ai", author_name="Llama", turn_key="d", content="d"
    )
    views.wrote(line)  # a fourth line passes the cap: the view is let go
    mark = (await repo.get_council_marked(db, council_id))[1]  # type: ignore[index]
    views.marked(council_id, mark)
    read = await views.lines(council_id, keep=True)
    assert [line.turn_key for line in read] == ["a", "b", "c", "d"]
    views.marked(council_id, mark)
    assert await views.lines(council_id, keep=True) is not read  # read again from the database each turn
