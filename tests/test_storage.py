"""Repository functions on SQLite and (with TEST_POSTGRES_URL) PostgreSQL, through the real migrations."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import inspect

from storage import repository as repo
from storage.database import Database, DatabaseURLError, async_url, safe_url

BIG_ID = 1_234_567_890_123_456_789  # Discord snowflakes do not fit in 32 bits


async def new_council(db: Database) -> int:
    council = await repo.create_council(
        db,
        guild_id=BIG_ID,
        channel_id=BIG_ID + 1,
        topic="Topic",
        mode="parallel",
        rounds=3,
        convener_id=BIG_ID + 2,
        convener_name="Ada",
        members=[("Claude", "the Coordinator"), ("Llama", None)],
    )
    assert council.id is not None
    return council.id


async def test_migrations_create_every_table(db: Database) -> None:
    async with db.engine.connect() as connection:
        tables = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    assert {"council", "council_member", "council_message", "guild_settings", "app_state", "alembic_version"} <= tables
    await db.migrate()  # running again at the next start-up is harmless


async def test_council_round_trip_keeps_big_ids_and_member_order(db: Database) -> None:
    council_id = await new_council(db)
    await repo.set_council_thread(db, council_id, BIG_ID + 3)
    council = await repo.get_council_by_thread(db, BIG_ID + 3)
    assert council is not None and council.id == council_id
    assert (council.guild_id, council.convener_id, council.state) == (BIG_ID, BIG_ID + 2, "starting")
    members = await repo.list_members(db, council_id)
    assert [(m.name, m.role, m.position) for m in members] == [("Claude", "the Coordinator", 0), ("Llama", None, 1)]
    assert await repo.set_member_role(db, council_id, "Llama", "the Realist")
    assert (await repo.list_members(db, council_id))[1].role == "the Realist"


async def test_messages_are_written_once_per_turn_and_remember_their_posts(db: Database) -> None:
    council_id = await new_council(db)
    first, created = await repo.add_message(
        db,
        council_id=council_id,
        round_number=1,
        author_kind="ai",
        author_name="Claude",
        turn_key="ai:r1:Claude",
        content="Hello",
        tokens_in=10,
        tokens_out=2,
    )
    again, created_again = await repo.add_message(
        db,
        council_id=council_id,
        round_number=1,
        author_kind="ai",
        author_name="Claude",
        turn_key="ai:r1:Claude",
        content="Hello again",
    )
    assert created and not created_again and again.id == first.id and again.content == "Hello"
    await repo.record_posted(db, first.id, [BIG_ID, BIG_ID + 1])
    stored = await repo.get_message_by_turn(db, council_id, "ai:r1:Claude")
    assert stored is not None and stored.discord_ids == [BIG_ID, BIG_ID + 1] and stored.posted_at is not None
    second, _ = await repo.add_message(
        db,
        council_id=council_id,
        round_number=1,
        author_kind="human",
        author_name="Grace",
        turn_key="human:1",
        content="Hi",
    )
    assert [m.id for m in await repo.transcript(db, council_id)] == [first.id, second.id]
    assert [m.id for m in await repo.transcript(db, council_id, up_to_id=first.id)] == [first.id]
    assert await repo.last_message_id(db, council_id) == second.id


async def test_only_one_of_racing_transitions_wins(db: Database) -> None:
    council_id = await new_council(db)
    results = await asyncio.gather(
        *(repo.transition_council(db, council_id, from_states=("starting",), to_state="running") for _ in range(5))
    )
    assert sorted(results) == [False] * 4 + [True]
    assert await repo.transition_council(db, council_id, from_states=("running",), to_state="concluded", reason="done")
    council = await repo.get_council(db, council_id)
    assert council is not None and council.state == "concluded" and council.end_reason == "done"
    assert council.ended_at is not None


async def test_usage_adds_up_under_concurrency(db: Database) -> None:
    council_id = await new_council(db)
    await asyncio.gather(
        *(
            repo.add_message(
                db,
                council_id=council_id,
                round_number=1,
                author_kind="ai",
                author_name="Claude",
                turn_key=f"ai:r{i}:Claude",
                content="x",
                tokens_in=10,
                tokens_out=1,
            )
            for i in range(20)
        )
    )
    council = await repo.get_council(db, council_id)
    assert council is not None and (council.tokens_in, council.tokens_out) == (200, 20)


async def test_state_values(db: Database) -> None:
    assert await repo.get_state_value(db, "k") is None
    await repo.set_state_value(db, "k", "one")
    await repo.set_state_value(db, "k", "two")
    assert await repo.get_state_value(db, "k") == "two"


def test_database_urls_map_to_async_drivers_and_hide_passwords() -> None:
    assert async_url("sqlite:///council.db") == "sqlite+aiosqlite:///council.db"
    assert async_url("postgres://u:pw@h/db") == "postgresql+asyncpg://u:pw@h/db"
    assert async_url("postgresql://u@h:5432/db") == "postgresql+asyncpg://u@h:5432/db"
    assert "pw" not in safe_url("postgresql+asyncpg://u:pw@h/db")
    with pytest.raises(DatabaseURLError, match="mysql"):
        async_url("mysql://u@h/db")


async def test_the_models_match_the_migrations(db: Database) -> None:
    """A table changed without a migration would only show up on someone's production database."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlmodel import SQLModel

    def differences(connection):  # type: ignore[no-untyped-def]
        return compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)

    async with db.engine.connect() as connection:
        assert await connection.run_sync(differences) == []
