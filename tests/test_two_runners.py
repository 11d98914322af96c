"""Two engines, each with its own connection pool and its own Discord, run the same council by mistake
(two processes that both believe they own the server): every line is still posted exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest

from bot.catalog import Catalog
from bot.council import leases
from bot.council.engine import CouncilEngine
from bot.providers.pool import ProviderPool
from storage import repository as repo
from storage.database import Database
from tests.engine_doubles import RecordingPublisher
from tests.fakes.provider_server import FakeProviderServer


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
async def other(db: Database) -> AsyncIterator[Database]:
    twin = db.twin()
    yield twin
    await twin.close()


@pytest.mark.parametrize(("mode", "stream"), [("round-robin", False), ("round-robin", True), ("parallel", False)])
async def test_two_engines_on_one_council_post_every_line_once(
    db: Database,
    other: Database,
    catalog: Catalog,
    session: aiohttp.ClientSession,
    provider_server: FakeProviderServer,
    mode: str,
    stream: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A lease that is always stale: both engines run the council, as when one takes over from the other
    # while it is still running. The post claims alone keep every post single.
    monkeypatch.setattr(leases, "RUNNER_LEASE", timedelta(0))
    provider_server.script("deepseek-test", status=400, message="bad request")  # every DeepSeek turn: a notice
    for model in ("claude-test", "llama-test"):
        provider_server.script(model, delay=0.01, chunk_delay=0.002)
    publishers = [RecordingPublisher(), RecordingPublisher()]
    engines = [
        CouncilEngine(pool, catalog, ProviderPool(session), publisher, provider_timeout=5, stream_replies=stream)
        for pool, publisher in zip((db, other), publishers, strict=True)
    ]
    plan = engines[0].plan(
        topic="Who posts this?", member_names="Claude, DeepSeek, Llama", roles=None, rounds=3, mode=mode
    )
    council = await engines[0].create(plan, guild_id=1, channel_id=2, convener_id=3, convener_name="Ada")
    await repo.set_council_thread(db, council.id, 77)
    await repo.transition_council(db, council.id, from_states=("starting",), to_state="running")
    try:
        async with asyncio.timeout(20):
            resumed = await asyncio.gather(*(engine.resume_all() for engine in engines))
            assert resumed == [[council.id], [council.id]]  # both run it
            await asyncio.gather(*(engine.wait_idle(council.id) for engine in engines))
    finally:
        await asyncio.gather(*(engine.shutdown() for engine in engines))

    posts = [post for publisher in publishers for post in publisher.posts]
    assert all(post.finished for post in posts)
    shown = Counter((post.author, post.content) for post in posts)
    assert [line for line, times in shown.items() if times > 1] == []
    lines = [line for line in await repo.transcript(db, council.id) if line.visibility == "visible"]
    assert all(line.discord_ids and line.posted_at is not None for line in lines)
    assert sorted(shown) == sorted(
        (line.author_name if line.author_kind == "ai" else "system", line.content) for line in lines
    )
    # DeepSeek's lines: three failure notices and the notice that it sits out the rest.
    assert Counter(line.author_name for line in lines) == {"Claude": 3, "DeepSeek": 4, "Llama": 3}
    # Each engine posted some of them, and the council finished once.
    assert sum(len(publisher.finished) for publisher in publishers) == 1
    final = await repo.get_council(other, council.id)
    assert final is not None and final.state == "concluded"


async def test_with_a_live_runner_the_second_engine_leaves_the_council_alone(
    db: Database, other: Database, catalog: Catalog, session: aiohttp.ClientSession, provider_server: FakeProviderServer
) -> None:
    publishers = [RecordingPublisher(), RecordingPublisher()]
    engines = [
        CouncilEngine(pool, catalog, ProviderPool(session), publisher, provider_timeout=5)
        for pool, publisher in zip((db, other), publishers, strict=True)
    ]
    plan = engines[0].plan(
        topic="Who runs this?", member_names="Claude, Llama", roles=None, rounds=2, mode="round-robin"
    )
    council = await engines[0].create(plan, guild_id=1, channel_id=2, convener_id=3, convener_name="Ada")
    await repo.set_council_thread(db, council.id, 77)
    await repo.transition_council(db, council.id, from_states=("starting",), to_state="running")
    try:
        async with asyncio.timeout(20):
            await asyncio.gather(*(engine.resume_all() for engine in engines))
            await asyncio.gather(*(engine.wait_idle(council.id) for engine in engines))
    finally:
        await asyncio.gather(*(engine.shutdown() for engine in engines))

    # One engine ran it: each member was asked once per round, and only one publisher shows anything.
    assert len(provider_server.requests) == 4
    assert sorted(len(publisher.posts) for publisher in publishers) == [0, 4]
    final = await repo.get_council(db, council.id)
    assert final is not None and final.state == "concluded" and final.runner == ""  # released at the end


async def test_a_runner_lease_is_taken_over_when_stale_or_its_process_is_gone(db: Database, other: Database) -> None:
    from storage import runner_repository as runner_repo
    from storage.models import utcnow

    council = await repo.create_council(
        db,
        guild_id=1,
        channel_id=2,
        topic="Lease",
        mode="round-robin",
        rounds=1,
        convener_id=3,
        convener_name="Ada",
        members=[("Claude", None)],
    )
    assert council.id is not None
    now = utcnow()
    alive, gone = (lambda _holder: False), (lambda _holder: True)
    assert (
        await runner_repo.claim_runner(db, council.id, "a", stale_before=now - timedelta(seconds=90), gone=alive)
        is None
    )
    assert await runner_repo.claim_runner(db, council.id, "a", stale_before=now, gone=alive) is None  # its own
    fresh = now - timedelta(seconds=90)
    assert await runner_repo.claim_runner(other, council.id, "b", stale_before=fresh, gone=alive) == "a"
    assert await runner_repo.claim_runner(other, council.id, "b", stale_before=fresh, gone=gone) is None
    assert (
        await runner_repo.claim_runner(db, council.id, "a", stale_before=utcnow() + timedelta(seconds=1), gone=alive)
        is None
    )
    assert await runner_repo.renew_runner(db, "a") == 1 and await runner_repo.renew_runner(db, "b") == 0
    await runner_repo.release_runner(db, "a", council.id)
    assert await runner_repo.claim_runner(other, council.id, "b", stale_before=fresh, gone=alive) is None


async def test_a_council_resumed_through_another_process_goes_on_where_it_runs(
    db: Database,
    other: Database,
    catalog: Catalog,
    session: aiohttp.ClientSession,
    provider_server: FakeProviderServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(leases, "HEARTBEAT", 0.2)
    provider_server.script("claude-test", delay=0.3)
    runner, bystander = RecordingPublisher(), RecordingPublisher()
    first = CouncilEngine(db, catalog, ProviderPool(session), runner, provider_timeout=5)
    second = CouncilEngine(other, catalog, ProviderPool(session), bystander, provider_timeout=5)
    plan = first.plan(
        topic="Paused here, resumed there", member_names="Claude, Llama", roles=None, rounds=2, mode="round-robin"
    )
    council = await first.create(plan, guild_id=1, channel_id=2, convener_id=3, convener_name="Ada")
    try:
        async with asyncio.timeout(20):
            await first.open(council.id, 77)
            await first.pause(council.id)  # takes effect after Claude's first turn
            while not first.runners.waits(council.id):
                await asyncio.sleep(0.02)
            assert await second.resume(council.id)  # the command reached the other process
            await first.wait_idle(council.id)
            await second.wait_idle(council.id)
    finally:
        await asyncio.gather(first.shutdown(), second.shutdown())
    assert [author for author, _ in runner.transcript(council.id)] == ["Claude", "Llama", "Claude", "Llama"]
    assert bystander.posts == []  # it left the council to the process running it
