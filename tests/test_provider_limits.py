"""At most N requests in flight to one provider endpoint, whatever the number of councils."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.catalog import Catalog
from bot.providers.base import ChatRequest, ChatTurn, ProviderError
from bot.providers.pool import ProviderPool
from tests.fakes.provider_server import FakeProviderServer


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def request(model: str) -> ChatRequest:
    return ChatRequest(model=model, system="", turns=(ChatTurn("user", "Hello"),), max_output_tokens=50)


async def test_one_endpoint_never_sees_more_than_its_limit(
    session: aiohttp.ClientSession, catalog: Catalog, provider_server: FakeProviderServer
) -> None:
    provider_server.script("llama-test", delay=0.1)
    provider_server.script("deepseek-test", delay=0.1)
    pool = ProviderPool(session, max_concurrency=3)
    llama, deepseek = pool(catalog.get("Llama")), pool(catalog.get("DeepSeek"))  # type: ignore[arg-type]
    calls = [llama.complete(request("llama-test"), timeout=10) for _ in range(6)]
    calls += [deepseek.complete(request("deepseek-test"), timeout=10) for _ in range(6)]
    replies = await asyncio.gather(*calls)
    assert len(replies) == 12 and provider_server.max_in_flight == 3  # both members share one endpoint
    assert pool.stats.calls == 12 and not pool.stats.errors
    assert pool.stats.in_flight[next(iter(pool.stats.in_flight))] == 0


async def test_waiting_for_a_slot_counts_against_the_timeout(
    session: aiohttp.ClientSession, catalog: Catalog, provider_server: FakeProviderServer
) -> None:
    provider_server.script("llama-test", delay=0.5)
    pool = ProviderPool(session, max_concurrency=1)
    llama = pool(catalog.get("Llama"))  # type: ignore[arg-type]
    first = asyncio.create_task(llama.complete(request("llama-test"), timeout=5))
    await asyncio.sleep(0.05)
    with pytest.raises(ProviderError) as caught:
        await llama.complete(request("llama-test"), timeout=0.2)
    assert caught.value.kind == "timeout"  # the slot never came free within the call's budget
    await first
    assert pool.stats.errors == {"timeout": 1}
