"""The three limits of a reply, over real loopback HTTP: the first token, the silence mid-reply, the total.

A reply that keeps arriving is never cut for taking long; a provider that says nothing is given up on
early; and the notice says which limit ran out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.providers import (
    AnthropicClient,
    ChatRequest,
    ChatTurn,
    Completion,
    OpenAICompatClient,
    ProviderClient,
    ProviderError,
    ReplyTimeouts,
    ResilientClient,
    RetryPolicy,
    StreamDelta,
)
from bot.providers.errors import transport_errors
from tests.fakes.provider_server import FakeProviderServer

KEY = "sk-test-TIMEOUTS-0123456789abcdef"
KINDS = ["anthropic", "openai"]
NAMES = {"anthropic": "Claude", "openai": "DeepSeek"}
QUICK = ReplyTimeouts(first_token=0.3, idle=0.3)
STEADY = " ".join(f"w{i}" for i in range(12))  # twelve chunks


@pytest.fixture
async def server() -> AsyncIterator[FakeProviderServer]:
    async with FakeProviderServer(api_key=KEY) as fake:
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


def client(kind: str, session: aiohttp.ClientSession, base_url: str, timeouts: ReplyTimeouts = QUICK) -> ProviderClient:
    if kind == "anthropic":
        return AnthropicClient(session, base_url=base_url, api_key=KEY, name=NAMES[kind], timeouts=timeouts)
    return OpenAICompatClient(session, base_url=f"{base_url}/v1", api_key=KEY, name=NAMES[kind], timeouts=timeouts)


def request() -> ChatRequest:
    return ChatRequest(model="m1", system="Be brief.", turns=(ChatTurn("user", "Hello"),), max_output_tokens=100)


async def collect(c: ProviderClient, timeout: float, seen: list[str] | None = None) -> Completion:
    final: Completion | None = None
    async for item in c.stream(request(), timeout=timeout):
        if isinstance(item, Completion):
            final = item
        elif seen is not None:
            seen.append(item.text)
    assert final is not None
    return final


async def timed_out(
    c: ProviderClient, *, stream: bool, timeout: float = 5, seen: list[str] | None = None
) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        if stream:
            await collect(c, timeout, seen)
        else:
            await c.complete(request(), timeout=timeout)
    assert caught.value.kind == "timeout"
    return caught.value


@pytest.mark.parametrize("kind", KINDS)
async def test_a_steady_reply_is_never_cut_for_taking_long(
    kind: str, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    # 12 chunks 0.1 s apart: 1.2 s in all, four times the first-token and silence limits.
    server.script("m1", STEADY, chunk_delay=0.1)
    started = time.monotonic()
    final = await collect(client(kind, session, server.base_url), timeout=5)
    assert final.text == STEADY and time.monotonic() - started > 1.0


@pytest.mark.parametrize("keepalive", [0.0, 0.05])
@pytest.mark.parametrize("kind", KINDS)
async def test_no_first_token_in_time(
    kind: str, keepalive: float, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    # The headers and the start event come at once; keep-alives are not the reply starting.
    server.script("m1", STEADY, first_token_delay=2, keepalive=keepalive)
    started = time.monotonic()
    err = await timed_out(client(kind, session, server.base_url), stream=True)
    assert time.monotonic() - started < 1.0
    assert (err.timer, str(err)) == ("first_token", f"{NAMES[kind]}: no first token within 0.3 s")


@pytest.mark.parametrize("kind", KINDS)
async def test_a_whole_reply_asked_for_at_once_must_come_within_the_first_token_limit(
    kind: str, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    server.script("m1", delay=2)
    err = await timed_out(client(kind, session, server.base_url), stream=False)
    assert (err.timer, str(err)) == ("first_token", f"{NAMES[kind]}: no reply within 0.3 s")


@pytest.mark.parametrize("kind", KINDS)
async def test_a_silence_mid_reply(kind: str, server: FakeProviderServer, session: aiohttp.ClientSession) -> None:
    server.script("m1", STEADY, gap_after=2, gap=2)
    seen: list[str] = []
    started = time.monotonic()
    err = await timed_out(client(kind, session, server.base_url), stream=True, seen=seen)
    assert time.monotonic() - started < 1.0
    assert (err.timer, str(err)) == ("idle", f"{NAMES[kind]}: silent for 0.3 s mid-reply")
    assert seen == ["w0 ", "w1 "]


@pytest.mark.parametrize("kind", KINDS)
async def test_keepalives_mid_reply_are_not_silence(
    kind: str, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    server.script("m1", STEADY, gap_after=2, gap=0.8, keepalive=0.1)
    assert (await collect(client(kind, session, server.base_url), timeout=5)).text == STEADY


@pytest.mark.parametrize("kind", KINDS)
async def test_the_total_still_bounds_a_steady_reply(
    kind: str, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    server.script("m1", STEADY, chunk_delay=0.1)
    seen: list[str] = []
    err = await timed_out(client(kind, session, server.base_url), stream=True, timeout=0.55, seen=seen)
    assert (err.timer, str(err)) == ("total", f"{NAMES[kind]}: not finished within 0.55 s")
    assert 3 <= len(seen) < 12


async def test_reasoning_output_counts_as_the_first_token(
    server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    """DeepSeek streams its reasoning as reasoning_content before any content: the reply has started."""

    def thinking(data: str) -> bytes:
        return f'data: {{"id": "x", "model": "m1", "choices": [{{"index": 0, "delta": {data}}}]}}\n\n'.encode()

    pieces = [thinking('{"role": "assistant", "content": ""}')]
    pieces += [thinking('{"reasoning_content": "hmm "}')] * 6
    raw = b"".join(pieces).decode() + 'data: {"choices": [{"index": 0, "delta": {"content": "Yes."}, '
    raw += '"finish_reason": "stop"}]}\n\ndata: [DONE]\n\n'
    server.script("m1", raw=raw)
    c = client("openai", session, server.base_url, ReplyTimeouts(first_token=5, idle=5))
    assert (await collect(c, timeout=5)).text == "Yes."


@pytest.mark.parametrize("kind", KINDS)
async def test_a_slow_consumer_is_not_the_providers_silence(
    kind: str, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    """The limits run only while the client waits for the network, never while the caller works."""
    server.script("m1", "one two three")
    texts: list[str] = []
    async for item in client(kind, session, server.base_url).stream(request(), timeout=5):
        if isinstance(item, StreamDelta):
            texts.append(item.text)
            await asyncio.sleep(0.4)  # longer than the silence limit, between two reads
    assert texts == ["one ", "two ", "three"]


# --- through the retry layer --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_a_hung_first_token_is_retried_and_the_notice_says_which_limit(
    kind: str, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    server.script("m1", STEADY, first_token_delay=2)
    policy = RetryPolicy(attempts=2, base_delay=0.01, min_attempt_time=0.05)
    resilient = ResilientClient(client(kind, session, server.base_url), policy=policy, rand=lambda: 1.0)
    err = await timed_out(resilient, stream=True)
    assert str(err) == f"{NAMES[kind]}: no first token within 0.3 s (after 2 attempts)"
    assert len(server.requests) == 2


@pytest.mark.parametrize("kind", KINDS)
async def test_the_total_names_the_callers_whole_budget(
    kind: str, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    server.script("m1", delay=2)
    generous = ReplyTimeouts(first_token=5, idle=5)
    resilient = ResilientClient(client(kind, session, server.base_url, generous), rand=lambda: 1.0)
    err = await timed_out(resilient, stream=False, timeout=0.25)
    assert (err.timer, str(err)) == ("total", f"{NAMES[kind]}: not finished within 0.25 s")


async def test_a_connect_timeout_means_the_host_is_down() -> None:
    with pytest.raises(ProviderError) as caught:
        async with transport_errors("X", 5, None):
            raise aiohttp.ConnectionTimeoutError("Connection timeout to host")
    assert (caught.value.kind, caught.value.unreachable) == ("connection", True)
    assert str(caught.value) == "X: connection failed (no connection within the connect timeout)"


def test_the_limits_must_be_positive() -> None:
    assert ReplyTimeouts() == ReplyTimeouts(first_token=120, idle=30, connect=10)
    with pytest.raises(ValueError):
        ReplyTimeouts(idle=0)
