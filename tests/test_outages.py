"""The database goes away mid-council (a real PostgreSQL stopped and started again, SQLite's write lock held
past its timeout): councils wait and go on by themselves, nothing is lost or doubled, no provider is asked twice,
and /health says 503 meanwhile. Also: a runner that ends without concluding its council is restarted."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from bot.catalog import Catalog
from storage import repository as repo
from storage.database import Database, is_unavailable
from tests.council_helpers import convene, member_posts, start_harness, wait_for
from tests.fakes.provider_server import FakeProviderServer
from tests.harness import DiscordHarness
from tests.throwaway_postgres import ThrowawayPostgres, why_unavailable

UNAVAILABLE = why_unavailable()
needs_postgres_binaries = pytest.mark.skipif(UNAVAILABLE is not None, reason=UNAVAILABLE or "")


@pytest.fixture
async def postgres() -> AsyncIterator[ThrowawayPostgres]:
    server = ThrowawayPostgres()
    try:
        await server.start()
        yield server
    finally:
        await server.close()


async def get(port: int, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}{path}") as response:
        return response.status, await response.text()


async def health(port: int) -> tuple[int, str]:
    return await get(port, "/health")


async def serve_health(harness: DiscordHarness) -> int:
    port = await harness.bot.start_health(0)  # type: ignore[attr-defined]
    harness.bot._ready.set()  # type: ignore[union-attr]  # dpytest never receives a gateway READY
    return port


def prompts_of(provider_server: FakeProviderServer, model: str) -> list[str]:
    return [str(request.json) for request in provider_server.requests if request.model == model]


@needs_postgres_binaries
async def test_postgres_stopped_mid_council_is_waited_out_and_the_council_goes_on(
    postgres: ThrowawayPostgres,
    provider_server: FakeProviderServer,
    catalog: Catalog,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = Database(postgres.url)
    await db.migrate()
    harness = await start_harness(monkeypatch, db, catalog, tmp_path)
    try:
        port = await serve_health(harness)
        provider_server.script("llama-test", delay=1.0)
        await convene(harness, members="Claude, Llama", rounds=2, wait=False)
        [thread] = harness.threads
        await wait_for(lambda: len(provider_server.requests) == 2)  # Claude posted; Llama is thinking

        await postgres.stop()  # Llama's reply comes back while the database is away
        await harness.say(harness.members["user"], thread, "Mind the cyclists, please.", wait_background=False)
        await asyncio.sleep(1.5)
        status, body = await health(port)
        assert status == 503 and '"database": "unreachable"' in body
        assert member_posts(harness, thread.id) == [("Claude", "claude-test reply #1")]
        status, metrics = await get(port, "/metrics")
        assert status == 200 and "ai_council_database_up 0" in metrics.splitlines()
        assert "ai_council_councils_waiting 1" in metrics.splitlines()

        await postgres.start()
        await harness.settle(timeout=30)
        assert member_posts(harness, thread.id) == [
            ("Claude", "claude-test reply #1"),
            ("Llama", "llama-test reply #1"),
            ("Claude", "claude-test reply #2"),
            ("Llama", "llama-test reply #2"),
        ]
        assert len(provider_server.requests) == 4  # each turn asked once: the reply in hand was kept
        council = await repo.get_council(db, 1)
        assert council is not None and council.state == "concluded"
        humans = [line for line in await repo.transcript(db, 1) if line.author_kind == "human"]
        assert [line.content for line in humans] == ["Mind the cyclists, please."]
        assert "Mind the cyclists" in prompts_of(provider_server, "claude-test")[-1]
        assert (await health(port))[0] == 200
        metrics = (await get(port, "/metrics"))[1].splitlines()
        assert "ai_council_database_up 1" in metrics and "ai_council_councils_waiting 0" in metrics
        errors = next(line for line in metrics if line.startswith("ai_council_database_errors_total "))
        assert int(errors.split()[1]) >= 1
    finally:
        await harness.close()
        await db.close()


async def test_sqlite_locked_past_its_timeout_is_waited_out(
    provider_server: FakeProviderServer, catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "council.db"
    db = Database(f"sqlite:///{path}", busy_timeout=0.3)
    await db.migrate()
    harness = await start_harness(monkeypatch, db, catalog, tmp_path, outage_notice_after=0.5)
    release = threading.Event()
    locked = threading.Event()

    def hold_the_write_lock() -> None:
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock, far past the bot's busy timeout
        locked.set()
        release.wait(30)
        other.execute("ROLLBACK")
        other.close()

    try:
        port = await serve_health(harness)
        provider_server.script("llama-test", delay=0.8)
        await convene(harness, members="Claude, Llama", rounds=2, wait=False)
        [thread] = harness.threads
        await wait_for(lambda: len(provider_server.requests) == 2)
        holder = asyncio.create_task(asyncio.to_thread(hold_the_write_lock))
        await asyncio.to_thread(locked.wait, 10)
        await harness.say(harness.members["user"], thread, "Mind the cyclists, please.", wait_background=False)
        await wait_for(lambda: bool(harness.bot.get_cog("CouncilCog").engine.patience.stats.waiting), timeout=10)  # type: ignore[attr-defined]
        status, body = await health(port)
        assert status == 503 and '"councils_waiting": 1' in body
        starter = harness.posts_in(harness.channel.id, kinds=("channel",))[0]
        await wait_for(lambda: "waiting" in str(starter.embeds))
        assert "⏳ waiting: the database is not answering" in str(starter.embeds)
        await wait_for(lambda: any("This council is waiting" in (p.content or "") for p in harness.posts_in(thread.id)))
        release.set()
        await holder
        await harness.settle(timeout=30)
        [notice] = [
            p for p in harness.posts_in(thread.id, kinds=("channel",)) if "This council waited" in (p.content or "")
        ]
        assert "the database is not answering" in (notice.content or "")  # edited once it was over
        assert "waiting" not in str(starter.embeds)
        assert [author for author, _ in member_posts(harness, thread.id)] == ["Claude", "Llama", "Claude", "Llama"]
        assert len(provider_server.requests) == 4
        assert "Mind the cyclists" in prompts_of(provider_server, "claude-test")[-1]
        council = await repo.get_council(db, 1)
        assert council is not None and council.state == "concluded"
    finally:
        release.set()
        await harness.close()
        await db.close()


async def test_a_runner_that_ends_without_concluding_is_restarted_by_the_supervisor(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    port = await serve_health(harness)
    engine = harness.bot.get_cog("CouncilCog").engine  # type: ignore[attr-defined]
    engine.supervise_every = 0.2
    await harness.dispatch("ready")  # the supervisor starts with the councils' resumption
    provider_server.script("llama-test", delay=0.5)
    await convene(harness, members="Claude, Llama", rounds=1, wait=False)
    [thread] = harness.threads
    await wait_for(lambda: len(provider_server.requests) == 2)
    runner = engine._tasks[1]
    runner.cancel()  # the runner ends for a reason nobody planned for
    await asyncio.gather(runner, return_exceptions=True)
    engine.supervise_every = 3600  # its next look is after this one: the gap can be seen meanwhile
    status, body = await health(port)
    assert status == 503 and '"councils_without_runner": 1' in body
    engine.supervise_every = 0.2
    await wait_for(lambda: 1 in engine._tasks, timeout=5)
    await harness.settle()
    assert [author for author, _ in member_posts(harness, thread.id)] == ["Claude", "Llama"]
    assert engine.patience.stats.runner_restarts >= 1
    assert (await health(port))[0] == 200


@needs_postgres_binaries
async def test_unavailability_is_told_apart_from_mistakes(postgres: ThrowawayPostgres, tmp_path: Path) -> None:
    db = Database(postgres.url)
    await db.migrate()
    try:
        await repo.add_message(
            db,
            council_id=await council_id(db),
            round_number=1,
            author_kind="ai",
            author_name="A",
            turn_key="k",
            content="x",
        )
        with pytest.raises(IntegrityError) as duplicate:
            await repo.add_message(
                db,
                council_id=999_999,  # no such council: a mistake, not an outage
                round_number=1,
                author_kind="ai",
                author_name="A",
                turn_key="k",
                content="x",
            )
        assert not is_unavailable(duplicate.value)
        await postgres.stop()
        with pytest.raises(Exception) as refused:
            await repo.get_council(db, 1)
        assert is_unavailable(refused.value)
        await postgres.start()
        assert await repo.get_council(db, 1) is not None
    finally:
        await db.close()

    sqlite_path = tmp_path / "x.db"
    lite = Database(f"sqlite:///{sqlite_path}", busy_timeout=0.1)
    await lite.migrate()
    other = sqlite3.connect(sqlite_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(OperationalError) as busy:
            await council_id(lite)
        assert is_unavailable(busy.value)
    finally:
        other.execute("ROLLBACK")
        other.close()
    with pytest.raises(OperationalError) as mistake:
        async with lite.session() as session:
            await session.execute(text("SELECT * FROM no_such_table"))
    assert not is_unavailable(mistake.value)
    await lite.close()


async def council_id(db: Database) -> int:
    council = await repo.create_council(
        db,
        guild_id=1,
        channel_id=2,
        topic="t",
        mode="round-robin",
        rounds=1,
        convener_id=3,
        convener_name="x",
        members=[("A", None)],
    )
    assert council.id is not None
    return council.id
