"""An in-process stand-in for the Anthropic Messages and OpenAI Chat Completions APIs.

It is deliberately as strict as the real services (unknown fields, role order, headers) so that tests catch
request shapes production would reject, and it answers with the real error shapes so error mapping is
exercised end to end over real HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import socket
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Self

from aiohttp import web

from tests.fakes.provider_tools import (
    ANTHROPIC_TOOL_BLOCKS,
    ToolScript,
    anthropic_exchange_problem,
    anthropic_tool_block_problem,
    anthropic_tool_blocks,
    anthropic_tool_events,
    anthropic_tools_problem,
    block_chars,
    call_words,
    calls_chars,
    openai_exchange_problem,
    openai_message_problem,
    openai_tool_calls,
    openai_tool_deltas,
    openai_tools_problem,
    scripted_calls,
    sign,
    tools_chars,
    unreturned_reasoning,
)

Reply = str | Callable[[dict[str, Any]], str]

# Tables, kept dense on purpose.
# fmt: off
ANTHROPIC_FIELDS = frozenset({
    "model", "max_tokens", "messages", "system", "stream", "metadata", "stop_sequences", "tools", "tool_choice",
    "thinking", "output_config",
})
OPENAI_FIELDS = frozenset({
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stream", "stream_options",
    "stop", "n", "seed", "user", "tools", "tool_choice", "response_format", "reasoning_effort",
})
# OpenAI's reasoning models, as the real API tells them apart (its own list, not the bot's rules table).
OPENAI_REASONING_MODEL = re.compile(r"^(o[134](-mini|-pro)?|gpt-5(\.\d+)?(-mini|-nano|-pro)?)(-\d{4}-\d{2}-\d{2})?$")
ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
    413: "request_too_large", 429: "rate_limit_error", 500: "api_error", 529: "overloaded_error",
}
DEFAULT_MESSAGES = {
    401: "invalid x-api-key", 403: "permission denied", 404: "model not found", 408: "Request timed out",
    409: "Conflict", 429: "Rate limit reached", 500: "Internal server error", 502: "Bad gateway",
    503: "Service unavailable", 529: "Overloaded",
}
# What each API answers a key whose credit or quota is spent.
ANTHROPIC_NO_CREDIT = (
    "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase "
    "credits."
)
OPENAI_NO_QUOTA = (
    "You exceeded your current quota, please check your plan and billing details. For more information on this "
    "error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors."
)
ANTHROPIC_PING = b'event: ping\ndata: {"type": "ping"}\n\n'
OPENAI_KEEPALIVE = b": keep-alive\n\n"  # an SSE comment, as OpenRouter and others send while a model works
# fmt: on


@dataclass
class Behaviour:
    """How the server answers one call for a model."""

    reply: Reply | None = None  # None: the deterministic f"{model} reply #{n}"
    delay: float = 0.0  # seconds before the response starts (to provoke client timeouts)
    status: int | None = None  # answer with this HTTP error in the API's own error shape
    retry_after: float | None = None  # sent as the retry-after header with `status`
    should_retry: bool | None = None  # sent as the x-should-retry header with `status` (both APIs send it)
    message: str | None = None  # error text for `status` / `stream_error`
    code: str | None = None  # OpenAI: the error's "code" (e.g. "insufficient_quota") for `status` / `stream_error`
    cut_after: int | None = None  # streaming: stop after this many text chunks
    cut_mode: Literal["drop", "eof"] = "drop"  # drop the TCP connection, or end the body cleanly minus terminator
    chunk_delay: float = 0.0  # seconds between streamed chunks
    first_token_delay: float = 0.0  # streaming: seconds between the head (headers, start event) and the first text
    gap_after: int | None = None  # streaming: after this many text chunks, fall silent for `gap` seconds
    gap: float = 0.0
    keepalive: float = 0.0  # streaming: during those waits, a keep-alive every this many seconds (ping / comment)
    stream_error: str | None = None  # streaming: an error of this type after cut_after chunks (Anthropic `error`
    # event, or an OpenAI-style {"error": ...} data line)
    raw: str | None = None  # answer 200 with exactly this body, to exercise the clients' malformed-response paths
    finish_reason: str | None = None  # OpenAI: instead of "stop" (e.g. "content_filter"); the reply is what got out
    stop_reason: str | None = None  # Anthropic: instead of "end_turn" (e.g. "refusal")
    disconnect: bool = False  # drop the connection (after `delay`) without answering at all
    # The model's reasoning before its answer. Anthropic: thinking blocks, only when the request enables thinking.
    # OpenAI-compatible: in `reasoning_field`: DeepSeek's and vLLM's "reasoning_content", OpenRouter's and Groq's
    # "reasoning", or "think_tags" (<think>…</think> before the answer, as Ollama and vLLM without a parser send).
    reasoning: str | None = None
    reasoning_field: Literal["reasoning_content", "reasoning", "think_tags"] = "reasoning_content"
    # Tools the model calls, each {"name": str, "arguments": dict}, after `reply` only if one was scripted (see
    # provider_tools.ToolScript: a list is called until the results come back, a callable reads the request).
    tool_calls: ToolScript = None


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    json: Any  # None when the body was not JSON
    model: str | None
    started: float  # time.monotonic()
    finished: float | None = None


def closed_port_url() -> str:
    """A loopback base URL where nothing listens: connecting is refused at once."""
    with socket.socket() as sock:  # a port that was just free and now has no listener
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class FakeProviderServer:
    """`async with FakeProviderServer(api_key="k") as server:` then point clients at `server.base_url`.

    Anthropic clients use base_url as-is; OpenAI-compatible clients use f"{server.base_url}/v1".
    """

    def __init__(self, *, api_key: str | None = None) -> None:
        self.api_key = api_key  # when set, both APIs reject any other key with 401
        # Keys the provider refuses (revoked: 401) or whose credit is spent, answered as each API does.
        self.revoked_keys: set[str] = set()
        self.spent_keys: set[str] = set()
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._standing: dict[str, Behaviour] = {}
        self._queued: defaultdict[str, deque[Behaviour]] = defaultdict(deque)
        self._calls: defaultdict[str, int] = defaultdict(int)
        self._tool_ids = itertools.count(1)  # call ids are unique per server, as the real ones are per request
        self._runner: web.AppRunner | None = None
        self._port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def script(self, model: str, reply: Reply | None = None, *, once: bool = False, **options: Any) -> None:
        """Set how calls for `model` are answered (options: the Behaviour fields).

        once=True queues a one-shot behaviour used by the next call before the standing one, so a test can
        script e.g. "429, then success".
        """
        behaviour = Behaviour(reply=reply, **options)
        if once:
            self._queued[model].append(behaviour)
        else:
            self._standing[model] = behaviour

    def requests_for(self, path_suffix: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith(path_suffix)]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/messages", self._anthropic)
        app.router.add_post("/v1/chat/completions", self._openai)
        # handler_cancellation: a client that timed out must not leave a sleeping handler that stalls stop().
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- shared plumbing ---------------------------------------------------------------------------------

    async def _record(self, request: web.Request) -> RecordedRequest:
        try:
            body: Any = json.loads(await request.read())
        except ValueError:
            body = None
        model = body.get("model") if isinstance(body, dict) and isinstance(body.get("model"), str) else None
        rec = RecordedRequest(request.path, dict(request.headers), body, model, time.monotonic())
        self.requests.append(rec)
        return rec

    def _next(self, model: str) -> Behaviour:
        """This call's behaviour: a queued one-shot first, else the model's standing script, else the default."""
        self._calls[model] += 1
        queue = self._queued[model]
        return queue.popleft() if queue else self._standing.get(model, Behaviour())

    def _reply_text(self, behaviour: Behaviour, model: str, body: dict[str, Any], calling: bool = False) -> str:
        if behaviour.reply is None:
            return "" if calling else f"{model} reply #{self._calls[model]}"
        return behaviour.reply(body) if callable(behaviour.reply) else behaviour.reply

    def _tool_calls(self, behaviour: Behaviour, body: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
        """This answer's calls, each with a fresh id."""
        return [
            {"id": f"{prefix}_fake_{next(self._tool_ids)}", "name": call["name"], "arguments": call["arguments"]}
            for call in scripted_calls(behaviour.tool_calls, body)
        ]

    def _dropped(self, request: web.Request) -> web.Response:
        """Close the connection without a response: what a crashed upstream or a reset looks like."""
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)  # never reaches the client

    def _enter(self) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    async def _stream(
        self, request: web.Request, behaviour: Behaviour, head: list[bytes], chunks: list[bytes], tail: list[bytes]
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache"})
        await resp.prepare(request)
        for piece in head:
            await resp.write(piece)
        keepalive = ANTHROPIC_PING if request.path.endswith("/messages") else OPENAI_KEEPALIVE
        await self._wait(resp, behaviour.first_token_delay, behaviour.keepalive, keepalive)
        for i, chunk in enumerate(chunks):
            if i and i == behaviour.gap_after:
                await self._wait(resp, behaviour.gap, behaviour.keepalive, keepalive)
            if behaviour.cut_after is not None and i >= behaviour.cut_after and not behaviour.stream_error:
                if behaviour.cut_mode == "drop" and request.transport is not None:
                    request.transport.abort()  # the chunked body never completes: what a dropped proxy looks like
                    return resp
                tail = []
                break
            if behaviour.chunk_delay:
                await asyncio.sleep(behaviour.chunk_delay)
            await resp.write(chunk)
        for piece in tail:
            await resp.write(piece)
        await resp.write_eof()
        return resp

    @staticmethod
    async def _wait(resp: web.StreamResponse, seconds: float, every: float, keepalive: bytes) -> None:
        """Say nothing for `seconds`, or only keep-alives every `every` seconds (what a busy upstream sends)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, every) if every else left)
            if every and time.monotonic() < deadline:
                await resp.write(keepalive)

    # --- Anthropic ---------------------------------------------------------------------------------------

    def _anthropic_error(
        self, status: int, message: str, retry_after: float | None = None, should_retry: bool | None = None
    ) -> web.Response:
        error_type = ANTHROPIC_ERROR_TYPES.get(status, "api_error")
        headers = error_headers(retry_after, should_retry)
        body = {"type": "error", "error": {"type": error_type, "message": message}}
        return web.json_response(body, status=status, headers=headers)

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        self._enter()
        rec = await self._record(request)
        try:
            if not request.headers.get("x-api-key"):
                return self._anthropic_error(401, "x-api-key header is required")
            if self.api_key is not None and request.headers["x-api-key"] != self.api_key:
                return self._anthropic_error(401, "invalid x-api-key")
            if request.headers["x-api-key"] in self.revoked_keys:
                return self._anthropic_error(401, "invalid x-api-key")
            if request.headers["x-api-key"] in self.spent_keys:
                return self._anthropic_error(400, ANTHROPIC_NO_CREDIT)
            if not request.headers.get("anthropic-version"):
                return self._anthropic_error(400, "anthropic-version: header is required")
            problem = anthropic_problem(rec.json)
            if problem:
                return self._anthropic_error(400, problem)
            body: dict[str, Any] = rec.json
            model = body["model"]
            behaviour = self._next(model)
            await asyncio.sleep(behaviour.delay)
            if behaviour.disconnect:
                return self._dropped(request)
            if behaviour.raw is not None:
                return raw_response(behaviour.raw, stream=bool(body.get("stream")))
            if behaviour.status:
                message = behaviour.message or DEFAULT_MESSAGES.get(behaviour.status, "error")
                return self._anthropic_error(behaviour.status, message, behaviour.retry_after, behaviour.should_retry)
            calls = self._tool_calls(behaviour, body, "toolu")
            reply, at_limit = within_limit(self._reply_text(behaviour, model, body, bool(calls)), body["max_tokens"])
            calls = [] if at_limit else calls  # the limit came before the model got to its calls
            # A model thinks only when the request turns thinking on (adaptive or with a budget).
            thinks = (body.get("thinking") or {}).get("type") in ("enabled", "adaptive")
            thought = behaviour.reasoning if thinks and behaviour.reasoning else ""
            words = len(reply.split()) + len(thought.split()) + call_words(calls)
            usage = {"input_tokens": estimate_input_tokens(body), "output_tokens": words}
            envelope = {"id": f"msg_fake_{len(self.requests)}", "type": "message", "role": "assistant", "model": model}
            stop_reason = behaviour.stop_reason or ("max_tokens" if at_limit else "tool_use" if calls else "end_turn")
            signature = sign(thought)
            if not body.get("stream"):
                content = [{"type": "text", "text": reply}] if reply else []  # a refusal may come with no block at all
                content += anthropic_tool_blocks(calls)
                if thought:
                    content.insert(0, {"type": "thinking", "thinking": thought, "signature": signature})
                return web.json_response(
                    {**envelope, "content": content, "stop_reason": stop_reason, "stop_sequence": None, "usage": usage}
                )
            start = {**envelope, "content": [], "stop_reason": None, "stop_sequence": None, "usage": {**usage}}
            text_index = 1 if thought else 0
            thinking_events = (
                [
                    sse("content_block_start", {"index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
                    *(
                        sse("content_block_delta", {"index": 0, "delta": {"type": "thinking_delta", "thinking": p}})
                        for p in split_reply(thought)
                    ),
                    sse(
                        "content_block_delta",
                        {"index": 0, "delta": {"type": "signature_delta", "signature": signature}},
                    ),
                    sse("content_block_stop", {"index": 0}),
                ]
                if thought
                else []
            )
            has_text = bool(reply) or not calls  # a reply that only calls tools opens no text block
            opening = {"index": text_index, "content_block": {"type": "text", "text": ""}}
            head = [
                sse("message_start", {"message": start}),
                *thinking_events,
                *([sse("content_block_start", opening)] if has_text else []),
                sse("ping", {}),
            ]
            chunks = [
                sse("content_block_delta", {"index": text_index, "delta": {"type": "text_delta", "text": piece}})
                for piece in split_reply(reply)
            ]
            closing = [sse("content_block_stop", {"index": text_index})] if has_text else []
            if calls:  # the calls' blocks follow the closed text block, streamed like the text
                chunks += closing + [sse(e, d) for e, d in anthropic_tool_events(calls, text_index + has_text)]
                closing = []
            final = {"stop_reason": stop_reason, "stop_sequence": None}
            tail = [
                *closing,
                sse("message_delta", {"delta": final, "usage": {"output_tokens": usage["output_tokens"]}}),
                sse("message_stop", {}),
            ]
            if behaviour.stream_error:
                # Real Anthropic streams report overload etc. this way, after the 200 headers went out.
                chunks = chunks[: behaviour.cut_after or 0]
                error = {"type": behaviour.stream_error, "message": behaviour.message or "Overloaded"}
                tail = [sse("error", {"error": error})]
            return await self._stream(request, behaviour, head, chunks, tail)
        finally:
            rec.finished = time.monotonic()
            self.in_flight -= 1

    # --- OpenAI ------------------------------------------------------------------------------------------

    def _openai_error(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        should_retry: bool | None = None,
        error_type: str | None = None,
    ) -> web.Response:
        error_type = error_type or {400: "invalid_request_error", 401: "invalid_request_error", 429: "requests"}.get(
            status, "server_error" if status >= 500 else "invalid_request_error"
        )
        headers = error_headers(retry_after, should_retry)
        body = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
        return web.json_response(body, status=status, headers=headers)

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        self._enter()
        rec = await self._record(request)
        try:
            if self.api_key is not None:
                given = request.headers.get("authorization", "").removeprefix("Bearer ")
                if given != self.api_key:
                    # Echoes the whole key on purpose (OpenAI masks most of it): clients must redact it themselves.
                    return self._openai_error(401, f"Incorrect API key provided: {given}.", code="invalid_api_key")
            given = request.headers.get("authorization", "").removeprefix("Bearer ")
            if given in self.revoked_keys:
                return self._openai_error(401, f"Incorrect API key provided: {given}.", code="invalid_api_key")
            if given in self.spent_keys:
                return self._openai_error(
                    429, OPENAI_NO_QUOTA, code="insufficient_quota", error_type="insufficient_quota"
                )
            problem = openai_problem(rec.json)
            if problem:
                return self._openai_error(400, problem[0], param=problem[1], code=problem[2])
            body: dict[str, Any] = rec.json
            model = body["model"]
            behaviour = self._next(model)
            if behaviour.reasoning and behaviour.reasoning_field == "reasoning_content":
                unreturned = unreturned_reasoning(body["messages"])
                if unreturned:
                    return self._openai_error(400, unreturned)
            await asyncio.sleep(behaviour.delay)
            if behaviour.disconnect:
                return self._dropped(request)
            if behaviour.raw is not None:
                return raw_response(behaviour.raw, stream=bool(body.get("stream")))
            if behaviour.status:
                message = behaviour.message or DEFAULT_MESSAGES.get(behaviour.status, "error")
                return self._openai_error(
                    behaviour.status,
                    message,
                    code=behaviour.code,
                    retry_after=behaviour.retry_after,
                    should_retry=behaviour.should_retry,
                )
            limit = body.get("max_completion_tokens", body.get("max_tokens"))
            calls = self._tool_calls(behaviour, body, "call")
            reply, at_limit = within_limit(self._reply_text(behaviour, model, body, bool(calls)), limit)
            calls = [] if at_limit else calls  # the limit came before the model got to its calls
            prompt, completion = estimate_input_tokens(body), len(reply.split()) + call_words(calls)
            usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
            base = {"id": f"chatcmpl-fake-{len(self.requests)}", "created": int(time.time()), "model": model}
            finish_reason = behaviour.finish_reason or ("length" if at_limit else "tool_calls" if calls else "stop")
            thought = behaviour.reasoning or ""
            tagged = thought and behaviour.reasoning_field == "think_tags"
            if not body.get("stream"):
                # A filtered reply with nothing to show comes back as content null.
                message = {
                    "role": "assistant",
                    "content": (f"<think>\n{thought}\n</think>\n\n{reply}" if tagged else reply) or None,
                }
                if thought and not tagged:
                    message[behaviour.reasoning_field] = thought
                if calls:
                    message["tool_calls"] = openai_tool_calls(calls)
                choice = {"index": 0, "message": message, "finish_reason": finish_reason}
                return web.json_response({**base, "object": "chat.completion", "choices": [choice], "usage": usage})
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

            def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
                choice = {"index": 0, "delta": delta, "finish_reason": finish}
                extra = {"usage": None} if include_usage else {}
                return data_line({**base, "object": "chat.completion.chunk", "choices": [choice], **extra})

            head = [chunk({"role": "assistant", "content": ""})]
            if tagged:
                head += [
                    chunk({"content": piece})
                    for piece in ["<th", "ink>\n", *split_reply(thought), "\n</think>", "\n\n"]
                ]
            elif thought:
                head += [chunk({"content": None, behaviour.reasoning_field: p}) for p in split_reply(thought)]
            chunks = [chunk({"content": piece}) for piece in split_reply(reply)]
            chunks += [chunk(delta) for delta in openai_tool_deltas(calls)]
            tail = [chunk({}, finish_reason)]
            if include_usage:
                tail.append(data_line({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}))
            tail.append(b"data: [DONE]\n\n")
            if behaviour.stream_error:
                # OpenAI-compatible servers (vLLM, LiteLLM, OpenRouter) report mid-stream failures as a data line.
                chunks = chunks[: behaviour.cut_after or 0]
                error = {"message": behaviour.message or "The server had an error", "type": behaviour.stream_error}
                tail = [data_line({"error": {**error, "param": None, "code": behaviour.code}})]
            return await self._stream(request, behaviour, head, chunks, tail)
        finally:
            rec.finished = time.monotonic()
            self.in_flight -= 1


# --- validation and formatting, kept free of server state ------------------------------------------------


def anthropic_problem(body: Any) -> str | None:
    """What the real Messages API would reject this body for (stricter on role alternation, on purpose)."""
    if not isinstance(body, dict):
        return "Request body must be a JSON object"
    for key in body:
        if key not in ANTHROPIC_FIELDS:
            return f"{key}: Extra inputs are not permitted"
    for key in ("model", "max_tokens", "messages"):
        if key not in body:
            return f"{key}: Field required"
    if not isinstance(body["model"], str) or not body["model"]:
        return "model: Input should be a valid string"
    if not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1:
        return "max_tokens: Input should be a positive integer"
    if "system" in body and not isinstance(body["system"], (str, list)):
        return "system: Input should be a valid string or list of text blocks"
    if "tools" in body and (problem := anthropic_tools_problem(body["tools"])):
        return problem
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    previous = None
    for i, msg in enumerate(messages):
        role = msg.get("role") if isinstance(msg, dict) else None
        if role not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        content = msg.get("content")
        if not content or (isinstance(content, str) and not content.strip()):
            return f"messages.{i}: all messages must have non-empty content"
        if not isinstance(content, (str, list)):
            return f"messages.{i}.content: Input should be a valid string or list"
        if isinstance(content, list):
            problem = anthropic_blocks_problem(content, i, role)
            if problem:
                return problem
        if i == 0 and role != "user":
            return 'messages: first message must use the "user" role'
        if role == previous:
            return 'messages: roles must alternate between "user" and "assistant"'
        previous = role
    problem = anthropic_exchange_problem(messages, body.get("tools"))
    if problem:
        return problem
    if previous == "assistant":
        # Claude 4.6 and later answer 400 to an assistant prefill: a conversation must end with a user turn.
        return "Prefilling assistant messages is not supported for this model."
    if "thinking" in body:
        return thinking_problem(body["thinking"], body["max_tokens"])
    return None


IMAGE_TYPES = {"image/png": b"\x89PNG", "image/jpeg": b"\xff\xd8\xff", "image/gif": b"GIF8", "image/webp": b"RIFF"}
ANTHROPIC_IMAGE_BYTES = 5 * 1024 * 1024  # per image, base64-encoded
ANTHROPIC_IMAGES = 100  # per request


def anthropic_blocks_problem(blocks: list[Any], index: int, role: str) -> str | None:
    """What the Messages API rejects in a list of content blocks: text, (in user turns) base64 images, each of one
    of the four types it reads, its bytes what the media type says, within 5 MB; and tool and thinking blocks
    (provider_tools.py)."""
    for j, block in enumerate(blocks):
        where = f"messages.{index}.content.{j}"
        if isinstance(block, dict) and block.get("type") in ANTHROPIC_TOOL_BLOCKS:
            problem = anthropic_tool_block_problem(block, where, role)
            if problem:
                return problem
            continue
        if not isinstance(block, dict) or block.get("type") not in ("text", "image"):
            return f"{where}: Input tag '{block.get('type') if isinstance(block, dict) else block}' found using 'type' does not match any of the expected tags"
        if block["type"] == "text":
            if set(block) - {"type", "text", "cache_control"} or not isinstance(block.get("text"), str):
                return f"{where}.text: Input should be a valid string (and no other fields)"
            if not block["text"].strip():
                return f"{where}: text content blocks must be non-empty"
            continue
        if role != "user":
            return f"{where}: image content blocks are only allowed in user messages"
        if set(block) - {"type", "source", "cache_control"}:
            return f"{where}: Extra inputs are not permitted"
        source = block.get("source")
        if (
            not isinstance(source, dict)
            or source.get("type") != "base64"
            or set(source) != {"type", "media_type", "data"}
        ):
            return f"{where}.source: Input should be a base64 source with media_type and data"
        problem = image_problem(source.get("media_type"), source.get("data"), ANTHROPIC_IMAGE_BYTES)
        if problem:
            return f"{where}.source: {problem}"
    images = sum(1 for block in blocks if isinstance(block, dict) and block.get("type") == "image")
    if images > ANTHROPIC_IMAGES:
        return f"messages.{index}: too many images (at most {ANTHROPIC_IMAGES} per request)"
    return None


def image_problem(media_type: Any, data: Any, limit: int) -> str | None:
    if media_type not in IMAGE_TYPES:
        return f"media_type: Input should be {', '.join(sorted(IMAGE_TYPES))}"
    if not isinstance(data, str) or len(data) > limit:
        return f"image exceeds {limit // (1024 * 1024)} MB maximum"
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError:
        return "Invalid base64 data"
    if not raw.startswith(IMAGE_TYPES[media_type]):
        return "Image does not match the provided media type"
    return None


def openai_parts_problem(parts: list[Any], index: int) -> tuple[str, str | None, str | None] | None:
    """What /chat/completions rejects in a user message's content parts: text and image_url parts only, an
    image as an https URL or a base64 data URL of an image type."""
    for j, part in enumerate(parts):
        param = f"messages[{index}].content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if set(part) != {"type", "text"} or not isinstance(part.get("text"), str):
                return "Invalid text content part.", param, None
        elif kind == "image_url":
            image = part.get("image_url")
            if set(part) != {"type", "image_url"} or not isinstance(image, dict) or set(image) - {"url", "detail"}:
                return "Invalid image_url content part.", param, None
            url = image.get("url")
            if image.get("detail", "auto") not in ("auto", "low", "high"):
                return "Invalid value for 'detail'.", f"{param}.image_url.detail", None
            if isinstance(url, str) and url.startswith("https://"):
                continue
            match = re.fullmatch(r"data:(image/[a-z]+);base64,(.*)", url, re.DOTALL) if isinstance(url, str) else None
            problem = image_problem(match.group(1), match.group(2), 20 * 1024 * 1024) if match else "Invalid image URL"
            if problem:
                return f"Invalid image: {problem}.", f"{param}.image_url.url", "invalid_image_format"
        else:
            return f"Invalid content part type: {kind!r}.", f"{param}.type", None
    return None


def thinking_problem(thinking: Any, max_tokens: int) -> str | None:
    """What the Messages API rejects in a `thinking` object: adaptive, enabled with a budget of at least 1,024
    tokens below max_tokens, or disabled; nothing else."""
    if not isinstance(thinking, dict):
        return "thinking: Input should be an object"
    allowed = {"adaptive": {"type", "display"}, "enabled": {"type", "budget_tokens", "display"}, "disabled": {"type"}}
    kind = thinking.get("type")
    if kind not in allowed:
        return "thinking.type: Input should be 'adaptive', 'enabled' or 'disabled'"
    for key in thinking:
        if key not in allowed[kind]:
            return f"thinking.{kind}.{key}: Extra inputs are not permitted"
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        if budget >= max_tokens:
            return "`max_tokens` must be greater than `thinking.budget_tokens`"
    return None


def openai_problem(body: Any) -> tuple[str, str | None, str | None] | None:
    """(message, param, code) for what /chat/completions would reject, else None."""
    if not isinstance(body, dict):
        return "We could not parse the JSON body of your request.", None, None
    for key in body:
        if key not in OPENAI_FIELDS:
            return f"Unrecognized request argument supplied: {key}", key, None
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "you must provide a model parameter", "model", None
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "[] is too short - 'messages'", "messages", None
    if "tools" in body and (tools_problem := openai_tools_problem(body["tools"])):
        return tools_problem
    for i, msg in enumerate(messages):
        role = msg.get("role") if isinstance(msg, dict) else None
        if role not in ("system", "user", "assistant", "tool", "developer"):
            return (
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'tool', 'developer'.",
                f"messages[{i}].role",
                None,
            )
        problem = openai_message_problem(msg, i)
        if problem:
            return problem
        content = msg.get("content")
        if role == "user" and isinstance(content, list) and content:
            problem = openai_parts_problem(content, i)
            if problem:
                return problem
        elif not isinstance(content, str) and not (role == "assistant" and "tool_calls" in msg and content is None):
            return f"Invalid type for 'messages[{i}].content': expected a string.", f"messages[{i}].content", None
    problem = openai_exchange_problem(messages)
    if problem:
        return problem
    temperature = body.get("temperature")
    if temperature is not None and (not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2):
        return "temperature must be a number between 0 and 2", "temperature", None
    if OPENAI_REASONING_MODEL.match(body["model"]):
        # The real API's words (code unsupported_parameter / unsupported_value).
        if "max_tokens" in body:
            return (
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.",
                "max_tokens",
                "unsupported_parameter",
            )
        if temperature is not None and temperature != 1:
            return (
                f"Unsupported value: 'temperature' does not support {temperature:g} with this model. "
                "Only the default (1) value is supported.",
                "temperature",
                "unsupported_value",
            )
    return None


def estimate_input_tokens(body: dict[str, Any]) -> int:
    """Deterministic stand-in for tokenisation: a quarter of the characters the model reads."""
    chars = len(body.get("system") or "") if isinstance(body.get("system"), str) else 0
    chars += tools_chars(body.get("tools"))
    for message in body["messages"]:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):  # text, calls and results count; an image is a flat 1,000 tokens here
            chars += sum(block_chars(p) for p in content)
        chars += calls_chars(message)
    return max(1, chars // 4)


def within_limit(reply: str, max_tokens: object) -> tuple[str, bool]:
    """The reply as a model bound by `max_tokens` gives it (a token is a word here), and whether it was cut."""
    pieces = split_reply(reply)
    if not isinstance(max_tokens, int) or len(pieces) <= max_tokens:
        return reply, False
    return "".join(pieces[:max_tokens]), True


def split_reply(reply: str) -> list[str]:
    """Word-sized stream chunks that join back to exactly the reply (whitespace included)."""
    return [piece for piece in re.split(r"(?<=\s)(?=\S)", reply) if piece]


def error_headers(retry_after: float | None, should_retry: bool | None) -> dict[str, str]:
    headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else {}
    if should_retry is not None:
        headers["x-should-retry"] = "true" if should_retry else "false"
    return headers


def raw_response(text: str, *, stream: bool) -> web.Response:
    return web.Response(text=text, content_type="text/event-stream" if stream else "application/json")


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps({'type': event, **data})}\n\n".encode()


def data_line(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()
