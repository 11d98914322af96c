"""Reports in storage: one open escalation per message and one report per person, decided by the database
even when two processes (two connection pools) report at once; and the migration that brings them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import Connection

from storage import governance_repository as gov
from storage import repository as repo
from storage.database import Database, alembic_config
from storage.models import Escalation


@pytest.fixture
async def other(db: Database) -> AsyncIterator[Database]:
    twin = db.twin()
    yield twin
    await twin.close()


async def new_council(db: Database) -> int:
    council = await repo.create_council(
        db,
        guild_id=1,
        channel_id=2,
        topic="Reports",
        mode="round-robin",
        rounds=1,
        convener_id=3,
        convener_name="Ada",
        members=[("Llama", None)],
    )
    assert council.id is not None
    return council.id


def fields(council_id: int, subject: str) -> dict[str, Any]:
    return {
        "guild_id": 1,
        "council_id": council_id,
        "source": "human",
        "category": "report",
        "reason": "Reported.",
        "author_name": "Llama",
        "content": "c",
        "subject": subject,
        "expires_at": datetime.now(UTC) + timedelta(hours=1),
    }


async def test_of_reports_opening_one_message_at_once_in_two_processes_one_opens_it(
    db: Database, other: Database
) -> None:
    council_id = await new_council(db)
    for n in range(5):
        subject = f"discord:{1000 + n}"
        opened = await asyncio.gather(
            *(
                gov.create_escalation(pool, reporter=(index, f"person {index}"), **fields(council_id, subject))
                for index, pool in enumerate([db, other, db, other])
            )
        )
        assert sum(item is not None for item in opened) == 1
        current = await gov.open_escalation(other, council_id, subject)
        assert current is not None and current.report_count == 1
    assert len(await gov.list_pending_escalations(db)) == 5


async def test_each_person_joins_an_open_escalation_once_and_a_decided_one_not_at_all(
    db: Database, other: Database
) -> None:
    council_id = await new_council(db)
    opened = await gov.create_escalation(db, reporter=(1, "Ann"), **fields(council_id, "line:7"))
    assert opened is not None and opened.id is not None
    joins = await asyncio.gather(
        *(
            gov.join_escalation(pool, opened.id, guild_id=1, reporter_id=reporter, reporter_name=f"P{reporter}")
            for reporter in (2, 3, 2, 3, 4)
            for pool in (db, other)
        )
    )
    assert sum(item is not None for item in joins) == 3  # 2, 3 and 4 once each
    current = await gov.get_escalation(other, opened.id)
    assert current is not None and current.report_count == 4
    assert sorted(current.reporters.split(", ")[1:]) == ["P2", "P3", "P4"] and current.reporters.startswith("Ann")
    count, oldest = await gov.recent_reports(db, 1, 2, datetime.now(UTC) - timedelta(minutes=10))
    assert count == 1 and oldest is not None

    await gov.claim_escalation(db, opened.id, state="approved", decided_by_id=9, decided_by_name="mod")
    assert await gov.join_escalation(other, opened.id, guild_id=1, reporter_id=5, reporter_name="Late") is None
    assert not await gov.has_reported(db, opened.id, 5)  # nothing of the refused join was kept
    again = await gov.create_escalation(other, reporter=(5, "Late"), **fields(council_id, "line:7"))
    assert again is not None and again.id != opened.id  # a decided escalation leaves room for a new one


def _migrate(connection: Connection, action: str, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    getattr(command, action)(config, revision)


async def test_the_migration_keeps_the_oldest_of_duplicate_open_escalations_open_to_reports(db: Database) -> None:
    council_id = await new_council(db)
    async with db.engine.begin() as connection:
        await connection.run_sync(_migrate, "downgrade", "0008")
    async with db.engine.begin() as connection:  # a line as the schema of 0008 has it
        await connection.execute(
            text(
                "INSERT INTO council_message (council_id, round, author_kind, author_name, turn_key, content, "
                "tokens_in, tokens_out, discord_message_ids, visibility, claimed_by, created_at) VALUES "
                "(:council, 1, 'ai', 'Llama', 't', 'c', 0, 0, '', 'visible', '', :now)"
            ),
            {"council": council_id, "now": datetime.now(UTC)},
        )
        line_id = (await connection.execute(text("SELECT MAX(id) FROM council_message"))).scalar_one()
    # (message id, state, reported by): two open about one line, as repeated reports used to leave them.
    rows = [(line_id, "pending", 11), (line_id, "pending", 12), (line_id, "approved", 13), (None, "pending", None)]
    async with db.engine.begin() as connection:
        for message_id, state, reporter in rows:
            await connection.execute(
                text(
                    "INSERT INTO escalation (guild_id, council_id, message_id, source, category, reason, author_name,"
                    " content, spoiler, held, state, end_council, reported_by_id, created_at, expires_at) VALUES"
                    " (1, :council, :message, 'human', 'report', 'r', 'Llama', 'c', false, false, :state, false,"
                    " :reporter, :now, :now)"
                ),
                {
                    "council": council_id,
                    "message": message_id,
                    "state": state,
                    "reporter": reporter,
                    "now": datetime.now(UTC),
                },
            )
        await connection.run_sync(_migrate, "upgrade", "head")

    async with db.session() as session:
        migrated = (await session.execute(text("SELECT id, subject, report_count FROM escalation ORDER BY id"))).all()
    first, second, decided, unstored = migrated
    assert first[1] == f"line:{line_id}" and second[1] is None and decided[1] is None and unstored[1] is None
    assert [row[2] for row in migrated] == [1, 1, 1, 0]
    assert await gov.has_reported(db, first[0], 11) and await gov.has_reported(db, second[0], 12)
    # A new report of that line joins the oldest open one; a second one about it cannot be opened.
    assert await gov.create_escalation(db, **fields(council_id, f"line:{line_id}")) is None
    joined = await gov.join_escalation(db, first[0], guild_id=1, reporter_id=14, reporter_name="Cy")
    assert isinstance(joined, Escalation) and joined.report_count == 2

    async with db.engine.begin() as connection:  # and back down, and up again
        await connection.run_sync(_migrate, "downgrade", "0008")
        await connection.run_sync(_migrate, "upgrade", "head")
