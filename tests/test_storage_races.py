"""Two processes (two connection pools) racing on the same rows: the database lets exactly one win."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from storage import governance_repository as gov
from storage import repository as repo
from storage.database import Database


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
        topic="Races",
        mode="round-robin",
        rounds=1,
        convener_id=3,
        convener_name="Ada",
        members=[("Llama", None)],
    )
    assert council.id is not None
    return council.id


async def test_one_of_two_processes_decides_each_escalation(db: Database, other: Database) -> None:
    council_id = await new_council(db)
    ids = []
    for _ in range(10):
        escalation = await gov.create_escalation(
            db,
            guild_id=1,
            council_id=council_id,
            source="rule",
            category="governance",
            reason="r",
            author_name="Llama",
            content="c",
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        )
        ids.append(escalation.id)
    results = await asyncio.gather(
        *(
            gov.claim_escalation(pool, escalation_id, state=state, decided_by_id=n, decided_by_name=f"mod{n}")
            for escalation_id in ids
            for n, (pool, state) in enumerate([(db, "approved"), (other, "rejected")])
        )
    )
    for index in range(0, len(results), 2):
        assert sum(result is not None for result in results[index : index + 2]) == 1
    for escalation_id in ids:
        decided = await gov.get_escalation(other, escalation_id)
        assert decided is not None and decided.state in ("approved", "rejected")


async def test_one_of_two_processes_moves_a_council(db: Database, other: Database) -> None:
    council_ids = [await new_council(db) for _ in range(10)]
    results = await asyncio.gather(
        *(
            repo.transition_council(pool, council_id, from_states=("starting",), to_state="running")
            for council_id in council_ids
            for pool in (db, other)
        )
    )
    assert sum(results) == len(council_ids)


async def test_one_of_two_processes_stores_each_turn(db: Database, other: Database) -> None:
    council_id = await new_council(db)
    results = await asyncio.gather(
        *(
            repo.add_message(
                pool,
                council_id=council_id,
                round_number=1,
                author_kind="ai",
                author_name="Llama",
                turn_key=f"ai:r{n}:Llama",
                content=f"from pool {i}",
                tokens_out=1,
            )
            for n in range(10)
            for i, pool in enumerate((db, other))
        )
    )
    assert sum(created for _, created in results) == 10
    council = await repo.get_council(other, council_id)
    assert council is not None and council.tokens_out == 10  # each turn's tokens counted once
