"""Replies cut at the member's output limit: heard as cut (not as complete), and continued when the catalog
says so, over real loopback HTTP against a fake that truncates at max_tokens as the real APIs do."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bot.catalog import Catalog, CatalogError, MemberSpec
from bot.providers import (
    AnthropicClient,
    ChatRequest,
    ChatTurn,
    Completion,
    OpenAICompatClient,
    ProviderClient,
    ProviderError,
    ResilientClient,
    RetryPolicy,
    StreamDelta,
)
from bot.providers.continuation import CONTINUE_PROMPT, ContinuingClient
from bot.providers.pool import ProviderPool
from tests.fakes.provider_server import FakeProviderServer, estimate_input_tokens

KEY = "sk-test-CUT-0123456789abcdef"
KINDS = ["anthropic", "openai"]
NAMES = {"anthropic": "Claude", "openai": "DeepSeek"}
FULL = "w0 w1 w2 w3 w4 w5 w6 w7 w8 w9"


@pytest.fixture
async def server() -> AsyncIterator[FakeProviderServer]:
    async with FakeProviderServer(api_key=KEY) as fake:
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


def client(kind: str, session: aiohttp.ClientSession, base_url: str) -> ProviderClient:
    if kind == "anthropic":
        return AnthropicClient(session, base_url=base_url, api_key=KEY, name=NAMES[kind])
    return OpenAICompatClient(session, base_url=f"{base_url}/v1", api_key=KEY, name=NAMES[kind])


def request(limit: int = 4) -> ChatRequest:
    return ChatRequest(model="m1", system="Be brief.", turns=(ChatTurn("user", "Count."),), max_output_tokens=limit)


async def ask(c: ProviderClient, *, stream: bool, limit: int = 4) -> Completion:
    if not stream:
        return await c.complete(request(limit), timeout=5)
    items = [item async for item in c.stream(request(limit), timeout=5)]
    *deltas, final = items
    assert isinstance(final, Completion)
    assert "".join(d.text for d in deltas if isinstance(d, StreamDelta)) == final.text
    return final


def continuing_model(body: dict[str, Any]) -> str:
    """A model that does as asked: after a cut, it goes on exactly where its reply stopped."""
    messages = body["messages"]
    if messages[-1]["content"] == CONTINUE_PROMPT:
        return FULL[len(messages[-2]["content"]) :]
    return FULL


# --- a cut reply is heard as cut ---------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", KINDS)
async def test_a_reply_cut_at_the_limit_is_marked_truncated(
    kind: str, stream: bool, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    server.script("m1", FULL)
    cut = await ask(client(kind, session, server.base_url), stream=stream)
    assert (cut.text, cut.truncated, cut.output_tokens) == ("w0 w1 w2 w3 ", True, 4)
    assert cut.finish_reason == ("max_tokens" if kind == "anthropic" else "length")
    whole = await ask(client(kind, session, server.base_url), stream=stream, limit=10)
    assert (whole.text, whole.truncated) == (FULL, False)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", KINDS)
async def test_a_limit_spent_before_any_text_is_said_so_and_not_retried(
    kind: str, stream: bool, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    # A model that reasons first can spend the whole limit before its first word of reply.
    reason = {"stop_reason": "max_tokens"} if kind == "anthropic" else {"finish_reason": "length"}
    server.script("m1", "", **reason)
    resilient = ResilientClient(client(kind, session, server.base_url), policy=RetryPolicy(base_delay=0.001))
    with pytest.raises(ProviderError) as caught:
        await ask(resilient, stream=stream)
    assert caught.value.kind == "limit"
    assert str(caught.value) == (
        f"{NAMES[kind]}: used its whole output limit (4 tokens) before writing any reply; raise its max_output_tokens"
    )
    assert len(server.requests) == 1


async def test_the_fake_refuses_an_assistant_prefill_as_claude_does(
    server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    body = {"model": "m1", "max_tokens": 5, "messages": [{"role": "user", "content": "a"}]}
    body["messages"].append({"role": "assistant", "content": "The answer is"})
    headers = {"x-api-key": KEY, "anthropic-version": "2026-10-21"}
    async with session.post(f"{server.base_url}/v1/messages", json=body, headers=headers) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"][
            "message"
        ] == "Prefilling assistant messages is not supported for this model."


# --- continuing, when the catalog asks for it ------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", KINDS)
async def test_a_cut_reply_is_continued_and_joined(
    kind: str, stream: bool, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    server.script("m1", continuing_model)
    result = await ask(ContinuingClient(client(kind, session, server.base_url), 2), stream=stream)
    assert (result.text, result.truncated) == (FULL, False)
    first, second, third = (r.json for r in server.requests)
    # A proper follow-up: the partial reply as the assistant's turn, then a user turn asking to go on.
    assert second["messages"][-2:] == [
        {"role": "assistant", "content": "w0 w1 w2 w3 "},
        {"role": "user", "content": CONTINUE_PROMPT},
    ]
    assert third["messages"][-2]["content"] == "w0 w1 w2 w3 w4 w5 w6 w7 "
    assert second["messages"][:-2] == first["messages"]
    assert result.input_tokens == sum(estimate_input_tokens(body) for body in (first, second, third))
    assert result.output_tokens == 10


@pytest.mark.parametrize("stream", [False, True])
async def test_continuations_are_bounded_and_the_reply_stays_marked(
    stream: bool, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    server.script("m1", continuing_model)
    result = await ask(ContinuingClient(client("openai", session, server.base_url), 1), stream=stream)
    assert (result.text, result.truncated) == ("w0 w1 w2 w3 w4 w5 w6 w7 ", True)
    assert len(server.requests) == 2


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", KINDS)
async def test_a_continuation_that_fails_before_its_first_word_leaves_the_reply_as_cut(
    kind: str,
    stream: bool,
    server: FakeProviderServer,
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server.script("m1", FULL, once=True)
    server.script("m1", status=400, message="context too long")
    with caplog.at_level(logging.WARNING, logger="bot.providers"):
        result = await ask(ContinuingClient(client(kind, session, server.base_url), 3), stream=stream)
    assert (result.text, result.truncated) == ("w0 w1 w2 w3 ", True)
    assert len(server.requests) == 2
    assert f"provider continuation failed provider={NAMES[kind]} number=1 kind=http" in caplog.text


@pytest.mark.parametrize("kind", KINDS)
async def test_a_continuation_cut_midway_is_a_cut_stream(
    kind: str, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    server.script("m1", FULL, once=True)
    server.script("m1", "more words here", cut_after=1)
    seen: list[str] = []
    with pytest.raises(ProviderError) as caught:
        async for item in ContinuingClient(client(kind, session, server.base_url), 2).stream(request(), timeout=5):
            assert isinstance(item, StreamDelta)
            seen.append(item.text)
    assert caught.value.kind == "cut"
    assert "".join(seen) == "w0 w1 w2 w3 more "


@pytest.mark.parametrize("stream", [False, True])
async def test_a_complete_reply_is_not_continued(
    stream: bool, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    result = await ask(ContinuingClient(client("anthropic", session, server.base_url), 3), stream=stream)
    assert (result.text, result.truncated) == ("m1 reply #1", False)
    assert len(server.requests) == 1


async def test_no_continuation_without_time_left_or_for_a_request_ending_with_the_assistant(
    server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    server.script("m1", FULL)
    continuing = ContinuingClient(client("openai", session, server.base_url), 3)
    assert (await continuing.complete(request(), timeout=0.5)).truncated  # under a second left: not asked
    odd = ChatRequest(
        model="m1", system="", turns=(ChatTurn("user", "a"), ChatTurn("assistant", "b")), max_output_tokens=4
    )
    assert (await continuing.complete(odd, timeout=5)).truncated
    assert len(server.requests) == 2


# --- the catalog -------------------------------------------------------------------------------------------


def entry(**fields: Any) -> dict[str, Any]:
    base = {"name": "M", "provider": "openai", "model": "m1", "base_url": "http://x/v1", "persona": "p"}
    return {**base, **fields}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [({}, 0), ({"continue_when_cut": False}, 0), ({"continue_when_cut": True}, 1)]
    + [({"continue_when_cut": True, "max_continuations": n}, n) for n in (1, 3, 5)],
)
def test_the_catalog_says_how_often_a_member_continues(fields: dict[str, Any], expected: int) -> None:
    member = Catalog.from_mapping({"member": [entry(**fields)]}).get("M")
    assert member is not None and member.max_continuations == expected


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"continue_when_cut": "yes"}, "continue_when_cut must be true or false"),
        ({"max_continuations": 2}, "max_continuations needs continue_when_cut = true"),
        ({"continue_when_cut": True, "max_continuations": 0}, "from 1 to 5"),
        ({"continue_when_cut": True, "max_continuations": 6}, "from 1 to 5"),
        ({"continue_when_cut": True, "max_continuations": 1.5}, "from 1 to 5"),
    ],
)
def test_the_catalog_refuses_odd_continuation_settings(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(CatalogError, match="member 'M'") as caught:
        Catalog.from_mapping({"member": [entry(**fields)]})
    assert message in str(caught.value)


async def test_the_pool_continues_only_members_that_ask_for_it(
    server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    server.script("m1", continuing_model)
    base = {"provider": "openai", "model": "m1", "base_url": f"{server.base_url}/v1", "persona": "p"}
    plain = MemberSpec(name="Plain", api_key_env="CUT_KEY", **base)
    eager = MemberSpec(name="Eager", api_key_env="CUT_KEY", max_continuations=2, **base)
    pool = ProviderPool(session, {"CUT_KEY": KEY})
    assert (await pool(plain).complete(request(), timeout=5)).truncated
    assert len(server.requests) == 1
    assert (await pool(eager).complete(request(), timeout=5)).text == FULL
    assert len(server.requests) == 4
    assert pool.stats.calls == 4  # each continuation is a call of its own
