"""Two engines, each with its own connection pool and its own Discord, run the same council by mistake
(two processes that both believe they own the server): every line is still posted exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.catalog import Catalog
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
) -> None:
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
