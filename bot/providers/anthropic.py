"""Claude models over the Anthropic Messages API, with plain aiohttp (no vendor SDK)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from bot.providers.base import ChatRequest, ChatTurn, Completion, ProviderError, StreamDelta, ToolCall
from bot.providers.errors import (
    as_dict,
    cut,
    empty,
    http_error,
    json_object,
    limit_spent,
    malformed,
    refused,
    status_error,
    token_count,
    transport_errors,
)
from bot.providers.sse import iter_sse
from bot.providers.timeouts import ReplyClock, ReplyTimeouts

API_VERSION = "2026-10-21"

# What an in-stream `error` event's type means, in the same terms (and status) as the HTTP error it stands for.
_STREAM_ERROR_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


# The stop_reason of a reply the safety classifiers ended, possibly after some text was already sent.
_REFUSAL = "refusal"
# The stop_reason of a reply cut at the request's max_tokens.
_MAX_TOKENS = "max_tokens"


# What stands for reasoning the provider encrypted (a redacted_thinking block): there is nothing to show.
REDACTED = "[part of the reasoning was redacted by the provider]"
# The blocks a reply that calls tools must send back with the calls, signature and all.
_SIGNED_TYPES = ("thinking", "redacted_thinking")


def _message(turn: ChatTurn) -> dict[str, Any]:
    """A turn as a message; turns without tools keep the plain form they always had."""
    if turn.tool_calls or turn.signed:
        # The API checks the signed blocks byte for byte and wants them first; the calls end the turn.
        blocks: list[dict[str, Any]] = [_plain(block) for block in turn.signed]
        if turn.content.strip():
            blocks.append({"type": "text", "text": turn.content})
        blocks += [
            {"type": "tool_use", "id": call.id, "name": call.name, "input": _plain(call.arguments)}
            for call in turn.tool_calls
        ]
        return {"role": turn.role, "content": blocks}
    if turn.tool_results:
        # A message answering tool calls must begin with their results.
        results = [_tool_result(result.call_id, result.content, result.is_error) for result in turn.tool_results]
        text = [{"type": "text", "text": turn.content}] if turn.content.strip() else []
        return {"role": turn.role, "content": [*results, *_images(turn), *text]}
    return {"role": turn.role, "content": _content(turn)}


def _tool_result(call_id: str, content: str, is_error: bool) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id, "content": content}
    if is_error:
        block["is_error"] = True
    return block


def _content(turn: ChatTurn) -> str | list[dict[str, Any]]:
    """A turn's text, after its images as base64 image blocks when it has any (images first, as Anthropic advises)."""
    if not turn.images:
        return turn.content
    return [*_images(turn), {"type": "text", "text": turn.content}]


def _images(turn: ChatTurn) -> list[dict[str, Any]]:
    return [
        {"type": "image", "source": {"type": "base64", "media_type": image.media_type, "data": image.base64()}}
        for image in turn.images
    ]


def _plain(value: Any) -> Any:
    """JSON-ready copies of what may arrive as read-only mappings and tuples (the body is serialised as JSON)."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _is_tool(block: dict[str, Any]) -> bool:
    return block.get("type") == "tool_use"


def _tool_call(provider: str, call_id: object, name: object, arguments: object) -> ToolCall:
    if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
        raise malformed(provider, "tool_use block without id or name")
    if not isinstance(arguments, dict):
        raise malformed(provider, "tool_use input is not an object")
    return ToolCall(call_id, name, arguments)


class _StreamedBlocks:
    """A streamed reply's tool_use and thinking blocks, rebuilt from their events as the API would have sent them
    whole (text and the readable reasoning are gathered apart, as they arrive)."""

    def __init__(self, provider: str) -> None:
        self._provider = provider
        self._blocks: dict[int, dict[str, Any]] = {}
        self._json: dict[int, list[str]] = {}

    def start(self, index: int, block: dict[str, Any]) -> None:
        kind = block.get("type")
        if kind == "tool_use":
            self._blocks[index] = {"type": kind, "id": block.get("id"), "name": block.get("name")}
            self._json[index] = []
        elif kind == "thinking":
            self._blocks[index] = {"type": kind, "thinking": "", "signature": ""}
        elif kind == "redacted_thinking":
            self._blocks[index] = dict(block)  # whole in its start event: the encrypted data is all there is

    def delta(self, index: int, delta: dict[str, Any]) -> None:
        block = self._blocks.get(index)
        kind = delta.get("type")
        if block is None:
            return
        if kind == "input_json_delta" and block["type"] == "tool_use":
            piece = delta.get("partial_json")
            if not isinstance(piece, str):
                raise malformed(self._provider, "input_json_delta without partial_json")
            self._json[index].append(piece)
        elif kind == "thinking_delta" and block["type"] == "thinking" and isinstance(delta.get("thinking"), str):
            block["thinking"] += delta["thinking"]
        elif kind == "signature_delta" and block["type"] == "thinking" and isinstance(delta.get("signature"), str):
            block["signature"] += delta["signature"]

    def finish(self, truncated: bool) -> tuple[tuple[ToolCall, ...], tuple[dict[str, Any], ...]]:
        """The calls, and the signed blocks that go back with them (none when nothing was called)."""
        calls: list[ToolCall] = []
        for index in sorted(self._json):
            block, raw = self._blocks[index], "".join(self._json[index])
            try:
                arguments = json.loads(raw) if raw.strip() else {}
            except ValueError:
                if truncated:
                    continue  # the output limit cut the call short: it was never made
                raise malformed(self._provider, "tool_use input is not valid JSON") from None
            calls.append(_tool_call(self._provider, block["id"], block["name"], arguments))
        signed = tuple(self._blocks[i] for i in sorted(self._blocks) if self._blocks[i]["type"] in _SIGNED_TYPES)
        return tuple(calls), signed if calls else ()


def _thought(block: dict[str, Any]) -> str:
    if block.get("type") == "thinking" and isinstance(block.get("thinking"), str):
        return str(block["thinking"])
    return REDACTED if block.get("type") == "redacted_thinking" else ""


def _index(event: dict[str, Any]) -> int:
    index = event.get("index")
    return index if isinstance(index, int) else -1


class AnthropicClient:
    """A ProviderClient for POST {base_url}/v1/messages."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        api_key: str,
        name: str = "anthropic",
        timeouts: ReplyTimeouts | None = None,
    ) -> None:
        self.name = name
        self._session = session
        self._url = f"{base_url.rstrip('/')}/v1/messages"
        self._api_key = api_key
        self._timeouts = timeouts or ReplyTimeouts()

    def __repr__(self) -> str:
        # Deliberately without the key: reprs end up in logs and tracebacks.
        return f"AnthropicClient(name={self.name!r}, url={self._url!r})"

    def _headers(self) -> dict[str, str]:
        return {"x-api-key": self._api_key, "anthropic-version": API_VERSION, "content-type": "application/json"}

    def _body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        # temperature/top_p/top_k are never sent: API version 2026-10-21 rejects them with a 400.
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_output_tokens,
            "messages": [_message(turn) for turn in request.turns],
        }
        if request.system:
            body["system"] = request.system
        if request.tools:
            body["tools"] = [
                {"name": tool.name, "description": tool.description, "input_schema": _plain(tool.input_schema)}
                for tool in request.tools
            ]
        if request.thinking == "adaptive":
            body["thinking"] = {"type": "adaptive"}
        elif isinstance(request.thinking, int):
            body["thinking"] = {"type": "enabled", "budget_tokens": request.thinking}
        if stream:
            body["stream"] = True
        return body

    async def _post(self, request: ChatRequest, *, stream: bool, clock: ReplyClock) -> aiohttp.ClientResponse:
        """Send the request; the response once its headers are in (the caller releases it)."""
        async with clock.waiting():
            return await self._session.post(
                self._url,
                json=self._body(request, stream=stream),
                headers=self._headers(),
                timeout=clock.connect_timeout,
            )

    async def complete(self, request: ChatRequest, *, timeout: float) -> Completion:
        clock = ReplyClock(self.name, self._timeouts, timeout, whole=True)
        async with (
            transport_errors(self.name, timeout, self._api_key),
            await self._post(request, stream=False, clock=clock) as resp,
        ):
            async with clock.waiting():
                body = await resp.text()
            if resp.status >= 300:
                raise http_error(self.name, resp.status, body, resp.headers, self._api_key)
        return self._parse_message(json_object(self.name, body), request)

    def _parse_message(self, data: dict[str, Any], request: ChatRequest) -> Completion:
        if data.get("stop_reason") == _REFUSAL:
            raise refused(self.name, "safety refusal")
        content = data.get("content")
        usage = data.get("usage")
        if not isinstance(content, list) or not isinstance(usage, dict):
            raise malformed(self.name, "missing content or usage")
        # Text blocks are the answer, thinking blocks the member's reasoning (kept apart), tool_use blocks its calls.
        content = [block for block in content if isinstance(block, dict)]
        texts = [b.get("text") for b in content if b.get("type") == "text"]
        thoughts = [_thought(b) for b in content]
        if not all(isinstance(t, str) for t in texts):
            raise malformed(self.name, "text block without text")
        text = "".join(t for t in texts if isinstance(t, str))
        truncated = data.get("stop_reason") == _MAX_TOKENS
        calls = tuple(_tool_call(self.name, b.get("id"), b.get("name"), b.get("input")) for b in content if _is_tool(b))
        if not text.strip() and not calls:
            raise limit_spent(self.name, request.max_output_tokens) if truncated else empty(self.name)
        return Completion(
            text=text,
            input_tokens=token_count(usage.get("input_tokens")),
            output_tokens=token_count(usage.get("output_tokens")),
            model=str(data.get("model") or request.model),
            finish_reason=str(data.get("stop_reason") or "unknown"),
            truncated=truncated,
            reasoning="\n\n".join(thought for thought in thoughts if thought).strip(),
            tool_calls=calls,
            signed=tuple(b for b in content if b.get("type") in _SIGNED_TYPES) if calls else (),
        )

    async def stream(self, request: ChatRequest, *, timeout: float) -> AsyncIterator[StreamDelta | Completion]:
        parts: list[str] = []
        thoughts: list[str] = []
        blocks = _StreamedBlocks(self.name)
        model = request.model
        input_tokens = output_tokens = 0
        stop_reason: str | None = None
        finished = False
        clock = ReplyClock(self.name, self._timeouts, timeout)
        async with (
            transport_errors(self.name, timeout, self._api_key),
            await self._post(request, stream=True, clock=clock) as resp,
        ):
            if resp.status >= 300:
                async with clock.waiting():
                    error_body = await resp.text()
                raise http_error(self.name, resp.status, error_body, resp.headers, self._api_key)
            async for sse in iter_sse(resp.content, clock):
                event = json_object(self.name, sse.data)
                kind = event.get("type", sse.event)
                if kind == "message_start":
                    message = as_dict(event.get("message"))
                    model = str(message.get("model") or model)
                    usage = as_dict(message.get("usage"))
                    input_tokens = token_count(usage.get("input_tokens"))
                    output_tokens = token_count(usage.get("output_tokens"))
                elif kind == "content_block_delta":
                    clock.token()  # any delta, thinking included: the model is producing output
                    delta = as_dict(event.get("delta"))
                    blocks.delta(_index(event), delta)
                    # Only text is shown; thinking is the reasoning, kept apart.
                    if delta.get("type") == "text_delta" and delta.get("text"):
                        parts.append(str(delta["text"]))
                        yield StreamDelta(parts[-1])
                    elif delta.get("type") == "thinking_delta" and isinstance(delta.get("thinking"), str):
                        thoughts.append(delta["thinking"])
                elif kind == "content_block_start":
                    block = as_dict(event.get("content_block"))
                    blocks.start(_index(event), block)
                    if block.get("type") == "redacted_thinking":
                        thoughts.append(f"\n\n{REDACTED}\n\n")
                    elif block.get("type") == "thinking" and thoughts:
                        thoughts.append("\n\n")
                elif kind == "message_delta":
                    stop_reason = as_dict(event.get("delta")).get("stop_reason") or stop_reason
                    usage = as_dict(event.get("usage"))
                    # message_delta usage is cumulative; input_tokens only appears there on newer API versions.
                    output_tokens = token_count(usage.get("output_tokens"), output_tokens)
                    input_tokens = token_count(usage.get("input_tokens"), input_tokens)
                elif kind == "message_stop":
                    finished = True
                    break
                elif kind == "error":
                    raise self._stream_error(event)
                # ping, content_block_stop and unknown future events carry nothing we need.
        if stop_reason == _REFUSAL:
            raise refused(self.name, "safety refusal")
        if not finished:
            raise cut(self.name)
        text = "".join(parts)
        truncated = stop_reason == _MAX_TOKENS
        calls, signed = blocks.finish(truncated)
        if not text.strip() and not calls:
            raise limit_spent(self.name, request.max_output_tokens) if truncated else empty(self.name)
        reasoning = "".join(thoughts).strip()
        finish_reason = str(stop_reason or "unknown")
        yield Completion(text, input_tokens, output_tokens, model, finish_reason, truncated, reasoning, calls, signed)

    def _stream_error(self, event: dict[str, Any]) -> ProviderError:
        """An error after the 200 headers (typically overloaded_error): report it as the HTTP error it stands for."""
        error = as_dict(event.get("error"))
        status = _STREAM_ERROR_STATUS.get(str(error.get("type")), 500)
        message = error.get("message")
        return status_error(self.name, status, message if isinstance(message, str) else None, self._api_key)
