"""Tool calling in both wire formats, over loopback HTTP against the fake provider, streaming and not: tools offered,
calls parsed, results sent back as each API requires (Claude's signed thinking unchanged), and every shape the
real APIs refuse refused by the fake too, and surfaced by the clients as a ProviderError."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.providers.anthropic import REDACTED, AnthropicClient
from bot.providers.base import (
    ChatRequest,
    ChatTurn,
    Completion,
    ProviderClient,
    ProviderError,
    StreamDelta,
    ToolCall,
    ToolResult,
    ToolSpec,
)
from bot.providers.continuation import ContinuingClient
from bot.providers.openai_compat import OpenAICompatClient
from tests.fakes.provider_server import (
    FakeProviderServer,
    anthropic_problem,
    data_line,
    estimate_input_tokens,
    openai_problem,
    sse,
)
from tests.fakes.provider_tools import sign, tool_results_in

KEY = "sk-tools-test"
KINDS = ["anthropic", "openai"]
LOOKUP = ToolSpec(
    "lookup",
    "Look a word up in the dictionary.",
    {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]},
)
CLOCK = ToolSpec("clock", "The time now.", {"type": "object", "properties": {}})
THOUGHT = "The word is Greek; the dictionary will say more than I remember."

Client = AnthropicClient | OpenAICompatClient


def client(kind: str, session: aiohttp.ClientSession, server: FakeProviderServer) -> Client:
    if kind == "anthropic":
        return AnthropicClient(session, base_url=server.base_url, api_key=KEY, name="Claude")
    return OpenAICompatClient(session, base_url=f"{server.base_url}/v1", api_key=KEY, name="DeepSeek")


def ask(*turns: ChatTurn, tools: tuple[ToolSpec, ...] = (LOOKUP, CLOCK), thinking: int | None = None) -> ChatRequest:
    return ChatRequest("m1", "Be brief.", turns, max_output_tokens=4000, tools=tools, thinking=thinking)


QUESTION = ChatTurn("user", "What was the agora?")


def after(first: Completion, *results: ToolResult, text: str = "") -> tuple[ChatTurn, ...]:
    """The conversation once the member called its tools and their results are in."""
    called = ChatTurn("assistant", first.text, tool_calls=first.tool_calls, signed=first.signed)
    return QUESTION, called, ChatTurn("user", text, tool_results=results)


async def answer(c: ProviderClient, request: ChatRequest, *, stream: bool) -> Completion:
    if not stream:
        return await c.complete(request, timeout=5)
    *deltas, final = [item async for item in c.stream(request, timeout=5)]
    assert isinstance(final, Completion)
    assert "".join(d.text for d in deltas if isinstance(d, StreamDelta)) == final.text
    return final


def final_text(body: dict[str, Any]) -> str:
    return "The agora was the square." if tool_results_in(body) else "Let me look."


# --- the loop -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", KINDS)
async def test_a_tool_is_offered_called_and_its_result_read(
    kind: str, stream: bool, provider_server: FakeProviderServer, http_session: aiohttp.ClientSession
) -> None:
    provider_server.script("m1", final_text, tool_calls=[{"name": "lookup", "arguments": {"word": "agora"}}])
    c = client(kind, http_session, provider_server)

    first = await answer(c, ask(QUESTION), stream=stream)
    [call] = first.tool_calls
    assert first.text == "Let me look."
    assert call.name == "lookup" and call.arguments == {"word": "agora"}
    assert first.finish_reason == ("tool_use" if kind == "anthropic" else "tool_calls") and not first.truncated

    done = await answer(c, ask(*after(first, ToolResult(call.id, "A public square."))), stream=stream)
    assert done.text == "The agora was the square." and done.tool_calls == ()
    assert done.finish_reason == ("end_turn" if kind == "anthropic" else "stop")

    offered, sent = provider_server.requests[0].json, provider_server.requests[1].json
    assert tool_results_in(sent) == [(call.id, "A public square.", False)]
    assert done.input_tokens == estimate_input_tokens(sent) > first.input_tokens  # the call and result are read
    if kind == "anthropic":
        assert call.id.startswith("toolu_fake_")
        assert offered["tools"][0] == {
            "name": "lookup",
            "description": "Look a word up in the dictionary.",
            "input_schema": dict(LOOKUP.input_schema),
        }
        assert sent["messages"][1:] == [
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": call.id, "name": "lookup", "input": {"word": "agora"}},
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "A public square."}],
            },
        ]
        assert sent["messages"][0] == {"role": "user", "content": "What was the agora?"}  # no tools: as always
    else:
        assert call.id.startswith("call_fake_")
        assert offered["tools"][1] == {
            "type": "function",
            "function": {"name": "clock", "description": "The time now.", "parameters": dict(CLOCK.input_schema)},
        }
        assert sent["messages"][2:] == [
            {
                "role": "assistant",
                "content": "Let me look.",
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"word": "agora"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call.id, "content": "A public square."},
        ]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", KINDS)
async def test_two_calls_in_one_reply_without_text_are_answered_together(
    kind: str, stream: bool, provider_server: FakeProviderServer, http_session: aiohttp.ClientSession
) -> None:
    calls = [{"name": "lookup", "arguments": {"word": "stoa"}}, {"name": "clock", "arguments": {}}]
    provider_server.script("m1", tool_calls=calls)  # no reply scripted: the calls come alone
    c = client(kind, http_session, provider_server)

    first = await answer(c, ask(QUESTION), stream=stream)  # no text, and still not an "empty" reply
    assert first.text == ""
    assert [(call.name, call.arguments) for call in first.tool_calls] == [("lookup", {"word": "stoa"}), ("clock", {})]
    stoa, clock = first.tool_calls
    assert stoa.id != clock.id

    results = (ToolResult(stoa.id, "A covered walkway."), ToolResult(clock.id, "Noon."))
    done = await answer(c, ask(*after(first, *results, text="Be quick.")), stream=stream)
    assert done.text == "m1 reply #2" and done.tool_calls == ()

    sent = provider_server.requests[1].json
    assert tool_results_in(sent) == [(stoa.id, "A covered walkway.", False), (clock.id, "Noon.", False)]
    if kind == "anthropic":
        assert [block["type"] for block in sent["messages"][1]["content"]] == ["tool_use", "tool_use"]
        assert [block["type"] for block in sent["messages"][2]["content"]] == ["tool_result", "tool_result", "text"]
    else:
        assert sent["messages"][2]["content"] is None
        assert [m["role"] for m in sent["messages"][3:]] == ["tool", "tool", "user"]
        assert sent["messages"][5] == {"role": "user", "content": "Be quick."}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", KINDS)
async def test_an_error_result_is_sent_as_an_error(
    kind: str, stream: bool, provider_server: FakeProviderServer, http_session: aiohttp.ClientSession
) -> None:
    provider_server.script("m1", tool_calls=[{"name": "lookup", "arguments": {"word": "zzz"}}])
    c = client(kind, http_session, provider_server)
    first = await answer(c, ask(QUESTION), stream=stream)
    [call] = first.tool_calls

    await answer(c, ask(*after(first, ToolResult(call.id, "No such word.", is_error=True))), stream=stream)
    sent = provider_server.requests[1].json
    if kind == "anthropic":
        assert tool_results_in(sent) == [(call.id, "No such word.", True)]
        assert sent["messages"][2]["content"][0]["is_error"] is True
    else:  # no error flag on this wire: the words say it
        assert tool_results_in(sent) == [(call.id, "Error: No such word.", False)]


# --- Claude's signed thinking ---------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_claudes_signed_thinking_goes_back_unchanged(
    stream: bool, provider_server: FakeProviderServer, http_session: aiohttp.ClientSession
) -> None:
    provider_server.script(
        "m1", final_text, reasoning=THOUGHT, tool_calls=[{"name": "lookup", "arguments": {"word": "agora"}}]
    )
    c = client("anthropic", http_session, provider_server)

    first = await answer(c, ask(QUESTION, thinking=2048), stream=stream)
    signed = {"type": "thinking", "thinking": THOUGHT, "signature": sign(THOUGHT)}
    assert first.signed == (signed,) and first.reasoning == THOUGHT
    [call] = first.tool_calls

    done = await answer(c, ask(*after(first, ToolResult(call.id, "A square.")), thinking=2048), stream=stream)
    assert done.text == "The agora was the square."
    assert done.signed == ()  # nothing called: nothing to send back
    sent = provider_server.requests[1].json["messages"][1]["content"]
    assert sent[0] == signed and [block["type"] for block in sent] == ["thinking", "text", "tool_use"]

    # The API checks the signature against the thinking: a block changed on the way is refused.
    forged = replace(first, signed=({**signed, "thinking": THOUGHT + " And more."},))
    with pytest.raises(ProviderError) as caught:
        await answer(c, ask(*after(forged, ToolResult(call.id, "A square.")), thinking=2048), stream=stream)
    assert (caught.value.kind, caught.value.status) == ("http", 400)
    assert "Invalid `signature` in `thinking` block" in str(caught.value)


@pytest.mark.parametrize("stream", [False, True])
async def test_deepseeks_reasoning_goes_back_with_its_tool_calls(
    stream: bool, provider_server: FakeProviderServer, http_session: aiohttp.ClientSession
) -> None:
    provider_server.script(
        "m1", final_text, reasoning=THOUGHT, tool_calls=[{"name": "lookup", "arguments": {"word": "agora"}}]
    )
    c = client("openai", http_session, provider_server)

    first = await answer(c, ask(QUESTION), stream=stream)
    assert first.signed == ({"reasoning_content": THOUGHT},) and first.reasoning == THOUGHT
    [call] = first.tool_calls
    done = await answer(c, ask(*after(first, ToolResult(call.id, "A square."))), stream=stream)
    assert done.text == "The agora was the square." and done.signed == ()
    [called] = [m for m in provider_server.requests[1].json["messages"] if m["role"] == "assistant"]
    assert called["reasoning_content"] == THOUGHT

    # Without it, DeepSeek's thinking mode refuses the request.
    with pytest.raises(ProviderError) as caught:
        await answer(c, ask(*after(replace(first, signed=()), ToolResult(call.id, "A square."))), stream=stream)
    assert caught.value.status == 400 and "Missing `reasoning_content`" in str(caught.value)


def anthropic_stream(*events: bytes, stop_reason: str = "tool_use") -> str:
    start = {"message": {"model": "m1", "content": [], "usage": {"input_tokens": 9, "output_tokens": 0}}}
    end = {"delta": {"stop_reason": stop_reason}, "usage": {"output_tokens": 7}}
    return b"".join([sse("message_start", start), *events, sse("message_delta", end), sse("message_stop", {})]).decode()


def tool_use_events(index: int, *pieces: str, call_id: str = "toolu_01", name: str = "lookup") -> list[bytes]:
    opened = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
    deltas = [{"index": index, "delta": {"type": "input_json_delta", "partial_json": piece}} for piece in pieces]
    return [
        sse("content_block_start", {"index": index, "content_block": opened}),
        *(sse("content_block_delta", delta) for delta in deltas),
        sse("content_block_stop", {"index": index}),
    ]


async def test_redacted_thinking_is_kept_whole_in_both_forms(
    provider_server: FakeProviderServer, http_session: aiohttp.ClientSession
) -> None:
    redacted = {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"}
    use = {"type": "tool_use", "id": "toolu_01", "name": "lookup", "input": {"word": "agora"}}
    whole = {"model": "m1", "content": [redacted, use], "stop_reason": "tool_use", "usage": {"input_tokens": 1}}
    streamed = anthropic_stream(
        sse("content_block_start", {"index": 0, "content_block": redacted}),
        sse("content_block_stop", {"index": 0}),
        *tool_use_events(1, '{"wo', 'rd": "ago', 'ra"}'),
    )
    c = client("anthropic", http_session, provider_server)
    for raw, stream in ((json.dumps(whole), False), (streamed, True)):
        provider_server.script("m1", raw=raw)
        completion = await answer(c, ask(QUESTION), stream=stream)
        assert completion.signed == (redacted,) and completion.reasoning == REDACTED
        assert completion.tool_calls == (ToolCall("toolu_01", "lookup", {"word": "agora"}),)


# --- streamed in pieces, and replies the clients refuse -------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_a_streamed_calls_json_arrives_in_pieces_and_is_put_back_together(
    kind: str, provider_server: FakeProviderServer, http_session: aiohttp.ClientSession
) -> None:
    arguments = {"word": "agora", "senses": ["market", "assembly"], "depth": 2, "note": 'ἀγορά "quoted"'}
    provider_server.script("m1", tool_calls=[{"name": "lookup", "arguments": arguments}])
    completion = await answer(client(kind, http_session, provider_server), ask(QUESTION), stream=True)
    assert [call.arguments for call in completion.tool_calls] == [arguments]

    # The same request again, its stream read raw: the JSON came in several pieces, none of them valid JSON alone.
    sent = provider_server.requests[0]
    headers = {"x-api-key": KEY, "anthropic-version": sent.headers["anthropic-version"]} if kind == "anthropic" else {}
    async with http_session.post(provider_server.base_url + sent.path, json=sent.json, headers=headers) as resp:
        raw = await resp.text()
    events = [json.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: {")]
    if kind == "anthropic":
        pieces = [e["delta"]["partial_json"] for e in events if e.get("delta", {}).get("type") == "input_json_delta"]
    else:
        deltas = [e["choices"][0]["delta"] for e in events if e.get("choices")]
        pieces = [d["tool_calls"][0]["function"]["arguments"] for d in deltas if "tool_calls" in d]
    pieces = [piece for piece in pieces if piece]
    assert len(pieces) >= 3 and json.loads("".join(pieces)) == arguments
    assert not any(_parses(piece) for piece in pieces)


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def openai_stream(*deltas: dict[str, Any], finish: str = "tool_calls") -> str:
    chunks = [{"model": "m1", "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
    chunks.append({"model": "m1", "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    return b"".join([*(data_line(chunk) for chunk in chunks), b"data: [DONE]\n\n"]).decode()


def openai_whole(*calls: dict[str, Any], content: str | None = None) -> str:
    message = {"role": "assistant", "content": content, "tool_calls": list(calls)}
    return json.dumps({"model": "m1", "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]})


def openai_call(arguments: Any, call_id: str | None = "call_1") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": "lookup", "arguments": arguments}}


def anthropic_whole(*blocks: dict[str, Any]) -> str:
    return json.dumps({"model": "m1", "content": list(blocks), "stop_reason": "tool_use", "usage": {}})


MALFORMED: list[tuple[str, str, bool, str]] = [
    ("anthropic", anthropic_whole({"type": "tool_use", "name": "lookup", "input": {}}), False, "without id"),
    ("anthropic", anthropic_whole({"type": "tool_use", "id": "t", "input": {}}), False, "without id or name"),
    ("anthropic", anthropic_whole({"type": "tool_use", "id": "t", "name": "x", "input": "{}"}), False, "not an object"),
    ("anthropic", anthropic_stream(*tool_use_events(0, '{"word": ', "agora}")), True, "not valid JSON"),
    ("anthropic", anthropic_stream(*tool_use_events(0, "[1, 2]")), True, "not an object"),
    ("anthropic", anthropic_stream(*tool_use_events(0, "{}", call_id="")), True, "without id"),
    ("openai", openai_whole(openai_call('{"word": agora}')), False, "not valid JSON"),
    ("openai", openai_whole(openai_call({"word": "agora"})), False, "not a string"),
    ("openai", openai_whole(openai_call("{}", call_id=None)), False, "without id"),
    ("openai", openai_whole(openai_call('"agora"')), False, "not an object"),
    (
        "openai",
        openai_stream(
            {"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "lookup", "arguments": '{"wo'}}]},
            {"tool_calls": [{"index": 0, "function": {"arguments": "rd: 1}"}}]},
        ),
        True,
        "not valid JSON",
    ),
]


@pytest.mark.parametrize(("kind", "raw", "stream", "why"), MALFORMED)
async def test_a_malformed_call_is_a_malformed_reply(
    kind: str,
    raw: str,
    stream: bool,
    why: str,
    provider_server: FakeProviderServer,
    http_session: aiohttp.ClientSession,
) -> None:
    provider_server.script("m1", raw=raw)
    with pytest.raises(ProviderError) as caught:
        await answer(client(kind, http_session, provider_server), ask(QUESTION), stream=stream)
    assert caught.value.kind == "malformed" and why in str(caught.value)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_call_cut_by_the_output_limit_was_never_made(
    kind: str, provider_server: FakeProviderServer, http_session: aiohttp.ClientSession
) -> None:
    if kind == "anthropic":
        raw = anthropic_stream(*tool_use_events(0, '{"word": "ag'), stop_reason="max_tokens")
    else:
        cut = {"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "lookup", "arguments": '{"word": "ag'}}]}
        raw = openai_stream(cut, finish="length")
    provider_server.script("m1", raw=raw)
    with pytest.raises(ProviderError) as caught:
        await answer(client(kind, http_session, provider_server), ask(QUESTION), stream=True)
    assert caught.value.kind == "limit"


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", KINDS)
async def test_a_reply_that_called_tools_is_never_continued(
    kind: str, stream: bool, provider_server: FakeProviderServer, http_session: aiohttp.ClientSession
) -> None:
    cut_short = {"stop_reason": "max_tokens"} if kind == "anthropic" else {"finish_reason": "length"}
    provider_server.script("m1", "Let me", tool_calls=[{"name": "clock", "arguments": {}}], **cut_short)
    continuing = ContinuingClient(client(kind, http_session, provider_server), max_continuations=2)
    completion = await answer(continuing, ask(QUESTION), stream=stream)
    assert completion.truncated and [call.name for call in completion.tool_calls] == ["clock"]
    assert len(provider_server.requests) == 1


# --- the fake refuses what the real APIs refuse ---------------------------------------------------------


def anthropic_loop() -> dict[str, Any]:
    return {
        "model": "m1",
        "max_tokens": 100,
        "tools": [{"name": "lookup", "description": "Look up.", "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "user", "content": "Q"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"word": "agora"}},
                ],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "A square."}]},
        ],
    }


def _said(body: dict[str, Any]) -> list[dict[str, Any]]:
    return body["messages"][1]["content"]


def _answered(body: dict[str, Any]) -> list[dict[str, Any]]:
    return body["messages"][2]["content"]


THINKING = {"type": "thinking", "thinking": "hm", "signature": sign("hm")}
ANTHROPIC_REFUSALS: list[tuple[str, Callable[[dict[str, Any]], object], str]] = [
    ("tools not a list", lambda b: b.update(tools={"name": "lookup"}), "tools: Input should be a valid list"),
    ("tool extra key", lambda b: b["tools"][0].update(parameters={}), "parameters: Extra inputs are not permitted"),
    ("tool name", lambda b: b["tools"][0].update(name="look up"), "name: String should match pattern"),
    ("tool name too long", lambda b: b["tools"][0].update(name="x" * 65), "String should match pattern"),
    ("tool names twice", lambda b: b["tools"].append(b["tools"][0]), "Tool names must be unique."),
    ("no schema", lambda b: b["tools"][0].pop("input_schema"), "input_schema: Field required"),
    ("schema type", lambda b: b["tools"][0].update(input_schema={"type": "string"}), "input_schema.type"),
    ("tool_use from user", lambda b: b["messages"][0].update(content=[_said(b)[1]]), "only allowed in assistant"),
    ("tool_result from assistant", lambda b: _said(b).append(_answered(b)[0]), "only allowed in user messages"),
    ("input not object", lambda b: _said(b)[1].update(input='{"word": "agora"}'), "Input should be a valid dict"),
    ("tool_use id", lambda b: _said(b)[1].update(id="toolu 1"), "tool_use.id: String should match pattern"),
    ("tool_use extra key", lambda b: _said(b)[1].update(arguments={}), "arguments: Extra inputs are not permitted"),
    (
        "tool_use ids twice",
        lambda b: b["messages"].extend([copy.deepcopy(m) for m in b["messages"][1:]]),
        "`tool_use` ids must be unique",
    ),
    ("unknown tool", lambda b: _said(b)[1].update(name="clock"), "tool `clock` is not one of the tools"),
    ("no tools", lambda b: b.pop("tools"), "Requests which include `tool_use` or `tool_result` blocks must define"),
    ("result unanswered", lambda b: b["messages"][2].update(content="Thanks."), "`tool_use` ids were found without"),
    (
        "result after text",
        lambda b: _answered(b).insert(0, {"type": "text", "text": "Here:"}),
        "Did not find 1 `tool_result` block(s) at the beginning of this message",
    ),
    (
        "result for another call",
        lambda b: _answered(b)[0].update(tool_use_id="toolu_2"),
        "unexpected `tool_use_id` found in `tool_result` blocks: toolu_2",
    ),
    ("result twice", lambda b: _answered(b).append(_answered(b)[0]), "unexpected `tool_use_id`"),
    ("result extra key", lambda b: _answered(b)[0].update(status="ok"), "status: Extra inputs are not permitted"),
    (
        "result content",
        lambda b: _answered(b)[0].update(content=[{"type": "image", "source": {}}]),
        "non-empty text block",
    ),
    ("empty error", lambda b: _answered(b)[0].update(content="", is_error=True), "content cannot be empty if"),
    ("thinking from user", lambda b: _answered(b).append(THINKING), "`thinking` blocks are only allowed in assistant"),
    ("thinking unsigned", lambda b: _said(b).insert(0, {"type": "thinking", "thinking": "hm"}), "Field required"),
    (
        "thinking forged",
        lambda b: _said(b).insert(0, {**THINKING, "signature": "forged"}),
        "Invalid `signature` in `thinking` block",
    ),
    ("redacted no data", lambda b: _said(b).insert(0, {"type": "redacted_thinking"}), "data: Field required"),
    ("thinking not first", lambda b: _said(b).insert(1, THINKING), "the first block must be thinking"),
]


@pytest.mark.parametrize(
    ("change", "words"), [(c, w) for _, c, w in ANTHROPIC_REFUSALS], ids=[i for i, _, _ in ANTHROPIC_REFUSALS]
)
def test_the_fake_refuses_what_the_messages_api_refuses(change: Callable[[dict[str, Any]], object], words: str) -> None:
    assert anthropic_problem(anthropic_loop()) is None
    signed = anthropic_loop()
    _said(signed).insert(0, THINKING)
    assert anthropic_problem(signed) is None  # signed thinking, first, in the assistant message: fine
    body = anthropic_loop()
    change(body)
    assert words in (anthropic_problem(body) or "")


def openai_loop() -> dict[str, Any]:
    return {
        "model": "m1",
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
        "messages": [
            {"role": "user", "content": "Q"},
            {"role": "assistant", "content": None, "tool_calls": [openai_call('{"word": "agora"}')]},
            {"role": "tool", "tool_call_id": "call_1", "content": "A square."},
        ],
    }


def _call(body: dict[str, Any]) -> dict[str, Any]:
    return body["messages"][1]["tool_calls"][0]


OPENAI_REFUSALS: list[tuple[str, Callable[[dict[str, Any]], object], str]] = [
    ("tool without type", lambda b: b["tools"][0].pop("type"), "expected an object with exactly 'type'"),
    ("tool type", lambda b: b["tools"][0].update(type="retrieval"), "Supported values are: 'function'"),
    (
        "function extra key",
        lambda b: b["tools"][0]["function"].update(input_schema={}),
        "Unrecognized request argument supplied: input_schema",
    ),
    ("function name", lambda b: b["tools"][0]["function"].update(name="look up"), "does not match pattern"),
    ("no tool_call_id", lambda b: b["messages"][2].pop("tool_call_id"), "Missing required parameter"),
    ("tool content", lambda b: b["messages"][2].update(content=None), "Invalid type for 'messages[2].content'"),
    (
        "answers another call",
        lambda b: b["messages"][2].update(tool_call_id="call_2"),
        "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.",
    ),
    (
        "answers nothing",
        lambda b: b["messages"].insert(1, {"role": "tool", "tool_call_id": "call_1", "content": "x"}),
        "must be a response to a preceeding message",
    ),
    (
        "unanswered",
        lambda b: b["messages"].__setitem__(2, {"role": "user", "content": "Thanks."}),
        "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
        "'tool_call_id'. The following tool_call_ids did not have response messages: call_1",
    ),
    ("unanswered at the end", lambda b: b["messages"].pop(2), "did not have response messages: call_1"),
    ("arguments object", lambda b: _call(b)["function"].update(arguments={}), "expected a string, but got dict"),
    ("call extra key", lambda b: _call(b).update(index=0), "expected exactly 'id', 'type' and 'function'"),
    ("call type", lambda b: _call(b).update(type="tool"), "'type' 'function'"),
    ("no calls", lambda b: b["messages"][1].update(tool_calls=[]), "empty array"),
    ("unknown message key", lambda b: b["messages"][0].update(tool_call_id="x"), "('tool_call_id' was unexpected)"),
    ("null content without calls", lambda b: b["messages"][1].pop("tool_calls"), "'messages[1].content'"),
]


@pytest.mark.parametrize(
    ("change", "words"), [(c, w) for _, c, w in OPENAI_REFUSALS], ids=[i for i, _, _ in OPENAI_REFUSALS]
)
def test_the_fake_refuses_what_chat_completions_refuses(change: Callable[[dict[str, Any]], object], words: str) -> None:
    assert openai_problem(openai_loop()) is None
    body = openai_loop()
    change(body)
    problem = openai_problem(body)
    assert problem is not None and words in problem[0]


LOOP = (
    QUESTION,
    ChatTurn("assistant", "", tool_calls=(ToolCall("toolu_1", "lookup", {"word": "agora"}),)),
    ChatTurn("user", "", tool_results=(ToolResult("toolu_1", "A square."),)),
)
# Requests a careless caller could build: the clients send them as they are, and the provider's 400 comes back.
CLIENT_REFUSALS: list[tuple[str, ChatRequest, dict[str, str]]] = [
    (
        "unanswered call",
        ask(*LOOP[:2], ChatTurn("user", "Never mind.")),
        {"anthropic": "`tool_use` ids were found without", "openai": "must be followed by tool messages"},
    ),
    (
        "result for no call",
        ask(QUESTION, ChatTurn("assistant", "Hm."), LOOP[2]),
        {"anthropic": "unexpected `tool_use_id`", "openai": "must be a response to a preceeding message"},
    ),
    ("tools not offered", ask(*LOOP, tools=()), {"anthropic": "must define tools"}),
    (
        "tool name",
        ask(QUESTION, tools=(ToolSpec("look up", "?", {"type": "object"}),)),
        {"anthropic": "String should match pattern", "openai": "does not match pattern"},
    ),
    (
        "schema",
        ask(QUESTION, tools=(ToolSpec("lookup", "?", {"type": "array"}),)),
        {"anthropic": "input_schema.type"},
    ),
]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("request_", "words"), [(r, w) for _, r, w in CLIENT_REFUSALS], ids=[i for i, _, _ in CLIENT_REFUSALS]
)
async def test_a_request_the_provider_refuses_is_a_provider_error(
    kind: str,
    stream: bool,
    request_: ChatRequest,
    words: dict[str, str],
    provider_server: FakeProviderServer,
    http_session: aiohttp.ClientSession,
) -> None:
    c = client(kind, http_session, provider_server)
    if kind not in words:  # this API lets it through
        await answer(c, request_, stream=stream)
        return
    with pytest.raises(ProviderError) as caught:
        await answer(c, request_, stream=stream)
    assert (caught.value.kind, caught.value.status) == ("http", 400)
    assert words[kind] in str(caught.value)


# --- any arguments at all -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(arguments=st.dictionaries(st.text(), json_values, max_size=5))
def test_whatever_arguments_the_model_sends_the_client_reads_them_exactly(arguments: dict[str, Any]) -> None:
    asyncio.run(_read_back(arguments))


async def _read_back(arguments: dict[str, Any]) -> None:
    async with FakeProviderServer() as server, aiohttp.ClientSession() as session:
        server.script("m1", tool_calls=[{"name": "lookup", "arguments": arguments}, {"name": "clock", "arguments": {}}])
        for kind in KINDS:
            for stream in (False, True):
                completion = await answer(client(kind, session, server), ask(QUESTION), stream=stream)
                assert [call.arguments for call in completion.tool_calls] == [arguments, {}], (kind, stream)
