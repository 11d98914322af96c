"""Provider clients against the fake provider server, over real HTTP on localhost."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

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
    StreamDelta,
    make_client,
)
from tests.fakes.provider_server import FakeProviderServer, estimate_input_tokens

KEY = "sk-test-SECRET-0123456789abcdef"
KINDS = ["anthropic", "openai"]


@pytest.fixture
async def server() -> AsyncIterator[FakeProviderServer]:
    async with FakeProviderServer(api_key=KEY) as fake:
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


def client(kind: str, session: aiohttp.ClientSession, base_url: str, api_key: str | None = KEY) -> ProviderClient:
    if kind == "anthropic":
        return AnthropicClient(session, base_url=base_url + "/", api_key=api_key or "", name="Claude")
    return OpenAICompatClient(session, base_url=base_url + "/v1", api_key=api_key, name="DeepSeek")


def request(
    model: str = "m1",
    system: str = "Be brief.",
    turns: tuple[tuple[str, str], ...] = (("user", "Hello there"),),
    temperature: float | None = None,
) -> ChatRequest:
    return ChatRequest(
        model=model,
        system=system,
        turns=tuple(ChatTurn(role, content) for role, content in turns),  # type: ignore[arg-type]
        max_output_tokens=200,
        temperature=temperature,
    )


async def collect(c: ProviderClient, req: ChatRequest, timeout: float = 5) -> list[StreamDelta | Completion]:
    return [item async for item in c.stream(req, timeout=timeout)]


async def failure(c: ProviderClient, req: ChatRequest, *, stream: bool, timeout: float = 5) -> ProviderError:
    """The ProviderError the call raises; also checks the one property every error must have."""
    with pytest.raises(ProviderError) as caught:
        if stream:
            await collect(c, req, timeout)
        else:
            await c.complete(req, timeout=timeout)
    err = caught.value
    assert KEY not in str(err) and KEY not in repr(err)
    assert err.provider == c.name and str(err).startswith(f"{c.name}: ")
    return err


# --- happy paths -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_complete_returns_text_and_usage(
    kind: str, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    req = request(turns=(("user", "Hello there"), ("assistant", "Hi."), ("user", "What is 2+2?")))
    result = await client(kind, session, server.base_url).complete(req, timeout=5)

    body = server.requests[0].json
    assert result.text == "m1 reply #1"
    assert result.model == "m1"
    assert result.input_tokens == estimate_input_tokens(body) > 0
    assert result.output_tokens == 3
    assert result.finish_reason == ("end_turn" if kind == "anthropic" else "stop")
    assert "stream" not in body


async def test_anthropic_wire_format(server: FakeProviderServer, session: aiohttp.ClientSession) -> None:
    c = client("anthropic", session, server.base_url)
    await c.complete(request(system="You are terse.", temperature=0.7), timeout=5)
    await c.complete(request(system=""), timeout=5)

    first, second = server.requests
    assert first.path == "/v1/messages"
    assert first.headers["x-api-key"] == KEY and first.headers["anthropic-version"] == "2026-10-21"
    assert first.json["system"] == "You are terse."
    assert first.json["messages"] == [{"role": "user", "content": "Hello there"}]
    assert first.json["max_tokens"] == 200
    # API version 2026-10-21 rejects sampling parameters; the fake would have answered 400.
    assert not {"temperature", "top_p", "top_k"} & first.json.keys()
    assert "system" not in second.json


async def test_openai_wire_format(server: FakeProviderServer, session: aiohttp.ClientSession) -> None:
    c = client("openai", session, server.base_url)
    await c.complete(request(system="You are terse.", temperature=0.3), timeout=5)
    await c.complete(request(system=""), timeout=5)

    first, second = server.requests
    assert first.path == "/v1/chat/completions"
    assert first.headers["Authorization"] == f"Bearer {KEY}"
    assert first.json["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hello there"},
    ]
    assert first.json["temperature"] == 0.3 and first.json["max_tokens"] == 200
    assert second.json["messages"] == [{"role": "user", "content": "Hello there"}]
    assert "temperature" not in second.json


async def test_openai_without_key_sends_no_authorization(session: aiohttp.ClientSession) -> None:
    async with FakeProviderServer() as keyless:  # like a local Ollama
        result = await client("openai", session, keyless.base_url, api_key=None).complete(request(), timeout=5)
    assert result.text == "m1 reply #1"
    assert "Authorization" not in keyless.requests[0].headers


@pytest.mark.parametrize("kind", KINDS)
async def test_stream_deltas_join_to_final_text(
    kind: str, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    server.script("m1", "The council has  reached\na verdict.")
    items = await collect(client(kind, session, server.base_url), request())

    *deltas, final = items
    assert len(deltas) > 1 and all(isinstance(d, StreamDelta) for d in deltas)
    assert isinstance(final, Completion)
    assert "".join(d.text for d in deltas if isinstance(d, StreamDelta)) == final.text
    assert final.text == "The council has  reached\na verdict."
    assert final.input_tokens == estimate_input_tokens(server.requests[0].json)
    assert final.output_tokens == 6
    assert final.finish_reason == ("end_turn" if kind == "anthropic" else "stop")
    assert server.requests[0].json["stream"] is True
    if kind == "openai":
        assert server.requests[0].json["stream_options"] == {"include_usage": True}


# --- error mapping -------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", KINDS)
async def test_rate_limited_carries_retry_after(
    kind: str, stream: bool, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    server.script("m1", status=429, retry_after=2, message="Slow down")
    c = client(kind, session, server.base_url)
    err = await failure(c, request(), stream=stream)
    assert (err.kind, err.status, err.retry_after) == ("rate_limited", 429, 2.0)
    assert str(err) == f"{c.name}: rate limited (HTTP 429, retry after 2s): Slow down"


@pytest.mark.parametrize("kind", KINDS)
async def test_wrong_key_is_auth_and_is_never_echoed(
    kind: str, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    wrong = "sk-wrong-abcdefghijklmnop"
    err = await failure(client(kind, session, server.base_url, api_key=wrong), request(), stream=False)
    assert (err.kind, err.status) == ("auth", 401)
    # The fake OpenAI echoes the key it got, as a worst-case provider would.
    assert wrong not in str(err)


@pytest.mark.parametrize(
    ("status", "expected_kind"), [(401, "auth"), (403, "auth"), (404, "not_found"), (500, "http"), (529, "http")]
)
@pytest.mark.parametrize("kind", KINDS)
async def test_status_mapping(
    kind: str, status: int, expected_kind: str, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    server.script("m1", status=status, message=f"boom {status}")
    err = await failure(client(kind, session, server.base_url), request(), stream=False)
    assert (err.kind, err.status) == (expected_kind, status)
    assert f"HTTP {status}" in str(err) and f"boom {status}" in str(err)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", KINDS)
async def test_slow_reply_times_out(
    kind: str, stream: bool, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    server.script("m1", delay=2)
    c = client(kind, session, server.base_url)
    err = await failure(c, request(), stream=stream, timeout=0.2)
    assert (err.kind, err.timer, str(err)) == ("timeout", "total", f"{c.name}: not finished within 0.2 s")


@pytest.mark.parametrize("kind", KINDS)
async def test_stalled_stream_times_out(kind: str, server: FakeProviderServer, session: aiohttp.ClientSession) -> None:
    server.script("m1", "one two three four", chunk_delay=0.15)
    err = await failure(client(kind, session, server.base_url), request(), stream=True, timeout=0.3)
    assert err.kind == "timeout"


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", KINDS)
async def test_refused_connection(kind: str, stream: bool, session: aiohttp.ClientSession) -> None:
    with socket.socket() as sock:  # a port that was just free and now has no listener
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    err = await failure(client(kind, session, f"http://127.0.0.1:{port}"), request(), stream=stream)
    assert err.kind == "connection"


@pytest.mark.parametrize("cut_mode", ["drop", "eof"])
@pytest.mark.parametrize("kind", KINDS)
async def test_cut_stream(kind: str, cut_mode: str, server: FakeProviderServer, session: aiohttp.ClientSession) -> None:
    server.script("m1", "one two three four five", cut_after=2, cut_mode=cut_mode)
    c = client(kind, session, server.base_url)
    seen: list[str] = []
    with pytest.raises(ProviderError) as caught:
        async for item in c.stream(request(), timeout=5):
            assert isinstance(item, StreamDelta)
            seen.append(item.text)
    assert caught.value.kind == "cut"
    assert seen == ["one ", "two "]


async def test_anthropic_stream_error_event(server: FakeProviderServer, session: aiohttp.ClientSession) -> None:
    server.script("m1", "one two three", stream_error="overloaded_error", cut_after=1, message="Overloaded")
    err = await failure(client("anthropic", session, server.base_url), request(), stream=True)
    assert (err.kind, err.status) == ("http", 529)
    assert str(err) == "Claude: overloaded (HTTP 529): Overloaded"


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", KINDS)
async def test_empty_reply(kind: str, stream: bool, server: FakeProviderServer, session: aiohttp.ClientSession) -> None:
    server.script("m1", "  ")
    err = await failure(client(kind, session, server.base_url), request(), stream=stream)
    assert err.kind == "empty"


@pytest.mark.parametrize(
    ("stream", "raw"),
    [(False, "<html>not json</html>"), (False, '{"id": "x"}'), (False, "[1, 2]"), (True, "data: {not json\n\n")],
)
@pytest.mark.parametrize("kind", KINDS)
async def test_malformed_reply(
    kind: str, stream: bool, raw: str, server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    server.script("m1", raw=raw)
    err = await failure(client(kind, session, server.base_url), request(), stream=stream)
    assert err.kind == "malformed"


# --- factory and fake server -------------------------------------------------------------------------------


async def test_make_client(session: aiohttp.ClientSession) -> None:
    a = make_client("anthropic", session, base_url="https://api.anthropic.com", api_key=KEY)
    o = make_client("openai", session, base_url="http://localhost:11434/v1", api_key=None, name="Ollama")
    assert isinstance(a, AnthropicClient) and a.name == "anthropic"
    assert isinstance(o, OpenAICompatClient) and o.name == "Ollama"
    assert KEY not in repr(a)
    with pytest.raises(ValueError):
        make_client("cohere", session, base_url="https://x", api_key=KEY)


async def test_fake_queue_then_standing_and_concurrency(
    server: FakeProviderServer, session: aiohttp.ClientSession
) -> None:
    import asyncio

    server.script("m1", status=429, retry_after=1, once=True)
    server.script("m1", delay=0.05)
    c = client("openai", session, server.base_url)
    first = await asyncio.gather(*(c.complete(request(), timeout=5) for _ in range(3)), return_exceptions=True)
    assert sorted(type(r).__name__ for r in first) == ["Completion", "Completion", "ProviderError"]
    assert server.max_in_flight == 3 and server.in_flight == 0
    assert all(r.finished is not None and r.finished >= r.started for r in server.requests)


async def raw_post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[int, Any]:
    headers = {"x-api-key": KEY, "anthropic-version": "2026-10-21", "authorization": f"Bearer {KEY}"}
    async with session.post(url, json=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_fake_anthropic_is_strict(server: FakeProviderServer, session: aiohttp.ClientSession) -> None:
    url = server.base_url + "/v1/messages"
    ok = {"model": "m1", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    assert (await raw_post(session, url, ok))[0] == 200

    status, body = await raw_post(session, url, {**ok, "temperature": 0.5})
    assert status == 400
    assert body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "temperature: Extra inputs are not permitted"},
    }
    same_role = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    for messages in (
        same_role,
        [{"role": "assistant", "content": "a"}],
        [{"role": "user", "content": ""}],
        [{"role": "system", "content": "a"}],
    ):
        status, body = await raw_post(session, url, {**ok, "messages": messages})
        assert status == 400 and body["error"]["type"] == "invalid_request_error", messages


async def test_fake_openai_is_strict(server: FakeProviderServer, session: aiohttp.ClientSession) -> None:
    url = server.base_url + "/v1/chat/completions"
    ok = {"model": "m1", "messages": [{"role": "user", "content": "hi"}]}
    assert (await raw_post(session, url, ok))[0] == 200

    status, body = await raw_post(session, url, {**ok, "top_k": 5})
    assert status == 400
    assert body["error"] == {
        "message": "Unrecognized request argument supplied: top_k",
        "type": "invalid_request_error",
        "param": "top_k",
        "code": None,
    }
    for bad in (
        {**ok, "messages": []},
        {**ok, "messages": [{"role": "tool", "content": "x"}]},
        {"messages": ok["messages"]},
    ):
        assert (await raw_post(session, url, bad))[0] == 400, bad
