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


async def stored_lines(db: Database, council_id: int, count: int, claimed_by: str = "") -> list[int]:
    ids = []
    for n in range(count):
        message, _ = await repo.add_message(
            db,
            council_id=council_id,
            round_number=1,
            author_kind="ai",
            author_name="Llama",
            turn_key=f"ai:r{n}:Llama",
            content=f"line {n}",
            claimed_by=claimed_by,
        )
        assert message.id is not None
        ids.append(message.id)
    return ids


def fresh() -> datetime:
    return datetime.now(UTC) - timedelta(minutes=1)


def nobody_gone(_claimant: str) -> bool:
    return False


async def test_one_of_two_processes_claims_each_line_to_post(db: Database, other: Database) -> None:
    line_ids = await stored_lines(db, await new_council(db), 20)
    contenders = [(db, "host/1/a"), (other, "host/2/b")]
    results = await asyncio.gather(
        *(
            repo.claim_post(pool, line_id, claimant, stale_before=fresh(), gone=nobody_gone)
            for line_id in line_ids
            for pool, claimant in contenders
        )
    )
    winners = [
        [claimant for (_, claimant), result in zip(contenders, results[i : i + 2], strict=True) if result.won]
        for i in range(0, len(results), 2)
    ]
    assert all(len(won) == 1 for won in winners)
    assert not any(result.took_over for result in results)
    for line_id, [winner] in zip(line_ids, winners, strict=True):
        line = await repo.get_message(other, line_id)
        assert line is not None and line.claimed_by == winner
        # The winner claims again (renewing its lease); the loser still cannot.
        assert (await repo.claim_post(db, line_id, winner, stale_before=fresh(), gone=nobody_gone)).won
        loser = next(claimant for _, claimant in contenders if claimant != winner)
        assert not (await repo.claim_post(other, line_id, loser, stale_before=fresh(), gone=nobody_gone)).won


async def test_a_claim_is_taken_over_only_from_a_stopped_claimant_and_never_once_posted(
    db: Database, other: Database
) -> None:
    stale, gone, live, posted, released = await stored_lines(db, await new_council(db), 5, claimed_by="host/1/dead")
    await repo.record_posted(db, posted, [555])
    await repo.release_claims(db, "host/1/dead")  # released lines: those not posted
    for line_id, claimant in ((stale, "host/1/live"), (live, "host/1/live"), (gone, "host/1/live-but-gone")):
        assert (await repo.claim_post(db, line_id, claimant, stale_before=fresh(), gone=nobody_gone)).took_over

    def only_dead_is_gone(claimant: str) -> bool:
        return claimant == "host/1/live-but-gone"

    # Older than the lease: taken over, by one process only (its new claim is not stale).
    lease_start = datetime.now(UTC)
    results = await asyncio.gather(
        repo.claim_post(db, stale, "host/2/a", stale_before=lease_start, gone=nobody_gone),
        repo.claim_post(other, stale, "host/3/b", stale_before=lease_start, gone=nobody_gone),
    )
    assert sorted((r.won, r.took_over) for r in results) == [(False, False), (True, True)]
    # Fresh, but its claimant is known to be gone: taken over at once.
    taken = await repo.claim_post(other, gone, "host/2/a", stale_before=fresh(), gone=only_dead_is_gone)
    assert (taken.won, taken.took_over) == (True, True)
    # Fresh and alive: not taken. Posted: claimed by nobody, not even its own claimant.
    assert not (await repo.claim_post(other, live, "host/2/a", stale_before=fresh(), gone=nobody_gone)).won
    assert not (await repo.claim_post(other, posted, "host/1/dead", stale_before=fresh(), gone=nobody_gone)).won
    # Released by a clean stop (`released`, like the three above before their new claims): taken over at
    # once, as from a stopped claimant.
    after_release = await repo.claim_post(other, released, "host/2/a", stale_before=fresh(), gone=nobody_gone)
    assert (after_release.won, after_release.took_over) == (True, True)
