"""Errors that will not pass end a council once, with its closing embed, and never leave a task behind whose
failure nobody saw."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bot.catalog import Catalog, MemberSpec
from bot.council.engine import CouncilEngine
from bot.council.seats import Seat
from bot.providers.base import ChatRequest, Completion, ProviderClient
from bot.providers.pool import ProviderPool
from storage import repository as repo
from storage.database import Database
from storage.models import Council
from tests.engine_doubles import RecordingPublisher
from tests.fakes.provider_server import FakeProviderServer


class Broken:
    """A client with a bug of its own: it raises what no retry layer knows."""

    name = "broken"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    async def complete(self, request: ChatRequest, *, timeout: float) -> Completion:
        await asyncio.sleep(self.delay)
        raise RuntimeError("a bug in a client")

    def stream(self, request: ChatRequest, *, timeout: float) -> Any:
        raise RuntimeError("a bug in a client")


class UnshowableLines(RecordingPublisher):
    """A publisher that fails, with an error nobody expects, on every attempt to show one member's words."""

    attempts: int = 0

    async def post_member_message(self, council: Council, seat: Seat, content: str, **kwargs: Any) -> list[int]:
        if seat.name == "DeepSeek":
            self.attempts += 1
            raise RuntimeError("the place broke")
        return await super().post_member_message(council, seat, content, **kwargs)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


async def start(engine: CouncilEngine, members: str, mode: str = "round-robin") -> int:
    plan = engine.plan(topic="Should cities ban cars?", member_names=members, roles=None, rounds=1, mode=mode)
    council = await engine.create(plan, guild_id=1, channel_id=2, convener_id=3, convener_name="Ada")
    await engine.open(council.id, thread_id=900 + council.id)
    return council.id


async def test_a_line_that_cannot_be_shown_fails_the_council_once_and_it_still_closes(
    db: Database, catalog: Catalog, session: aiohttp.ClientSession, provider_server: FakeProviderServer
) -> None:
    publisher = UnshowableLines()
    engine = CouncilEngine(db, catalog, ProviderPool(session), publisher, provider_timeout=5)
    try:
        council_id = await start(engine, "Claude, DeepSeek, Llama")
        await publisher.wait_finished(council_id)
        await engine.wait_idle(council_id)
        council = await repo.get_council(db, council_id)
        assert council is not None and council.state == "failed"
        assert [c.state for c in publisher.finished] == ["failed"]  # one closing, never a second
        assert publisher.transcript(council_id) == [("Claude", "claude-test reply #1")]
        assert publisher.attempts == 2  # once in its turn, once more as the council ended; then it stops trying
        assert not any(r.model == "llama-test" for r in provider_server.requests)
    finally:
        await engine.shutdown()


async def test_every_failure_in_a_parallel_round_is_seen_none_is_lost(
    db: Database,
    catalog: Catalog,
    session: aiohttp.ClientSession,
    provider_server: FakeProviderServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider_server.script("claude-test", delay=0.3)
    publisher = RecordingPublisher()
    pool = ProviderPool(session)

    def clients(spec: MemberSpec) -> ProviderClient:
        return Broken() if spec.name in ("DeepSeek", "Llama") else pool(spec)

    loop = asyncio.get_running_loop()
    created: list[asyncio.Task[Any]] = []

    def keep(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop, **kwargs)
        created.append(task)
        return task

    loop.set_task_factory(keep)  # type: ignore[arg-type]
    engine = CouncilEngine(db, catalog, clients, publisher, provider_timeout=5)
    try:
        council_id = await start(engine, "Claude, DeepSeek, Llama", mode="parallel")
        await publisher.wait_finished(council_id)
        await engine.wait_idle(council_id)
        council = await repo.get_council(db, council_id)
        assert council is not None and council.state == "failed"
        # A task whose failure was never retrieved logs "Task exception was never retrieved" when collected.
        unseen = [task for task in created if task.done() and task._log_traceback]  # type: ignore[attr-defined]
        assert unseen == []
        # DeepSeek's failure ends the round; Llama's, which nobody awaited, is logged rather than dropped.
        assert any("A member's call in a round ended with RuntimeError" in r.getMessage() for r in caplog.records)
    finally:
        loop.set_task_factory(None)
        await engine.shutdown()
