"""Claude models over the Anthropic Messages API, with plain aiohttp (no vendor SDK)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from bot.providers.base import ChatRequest, ChatTurn, Completion, ProviderError, StreamDelta
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


def _content(turn: ChatTurn) -> str | list[dict[str, Any]]:
    """A turn's text, after its images as base64 image blocks when it has any (images first, as Anthropic advises)."""
    if not turn.images:
        return turn.content
    images = [
        {"type": "image", "source": {"type": "base64", "media_type": image.media_type, "data": image.base64()}}
        for image in turn.images
    ]
    return [*images, {"type": "text", "text": turn.content}]


def _thought(block: dict[str, Any]) -> str:
    if block.get("type") == "thinking" and isinstance(block.get("thinking"), str):
        return str(block["thinking"])
    return REDACTED if block.get("type") == "redacted_thinking" else ""


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
            "messages": [{"role": turn.role, "content": _content(turn)} for turn in request.turns],
        }
        if request.system:
            body["system"] = request.system
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
        # Only text blocks are the answer; thinking blocks are the member's reasoning, kept apart (tool_use: none).
        texts = [b.get("text") for b in content if isinstance(b, dict) and b.get("type") == "text"]
        thoughts = [_thought(b) for b in content if isinstance(b, dict)]
        if not all(isinstance(t, str) for t in texts):
            raise malformed(self.name, "text block without text")
        text = "".join(t for t in texts if isinstance(t, str))
        truncated = data.get("stop_reason") == _MAX_TOKENS
        if not text.strip():
            raise limit_spent(self.name, request.max_output_tokens) if truncated else empty(self.name)
        return Completion(
            text=text,
            input_tokens=token_count(usage.get("input_tokens")),
            output_tokens=token_count(usage.get("output_tokens")),
            model=str(data.get("model") or request.model),
            finish_reason=str(data.get("stop_reason") or "unknown"),
            truncated=truncated,
            reasoning="\n\n".join(thought for thought in thoughts if thought).strip(),
        )

    async def stream(self, request: ChatRequest, *, timeout: float) -> AsyncIterator[StreamDelta | Completion]:
        parts: list[str] = []
        thoughts: list[str] = []
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
                    # Only text is shown; thinking is the reasoning (signature_delta, input_json_delta: nothing).
                    if delta.get("type") == "text_delta" and delta.get("text"):
                        parts.append(str(delta["text"]))
                        yield StreamDelta(parts[-1])
                    elif delta.get("type") == "thinking_delta" and isinstance(delta.get("thinking"), str):
                        thoughts.append(delta["thinking"])
                elif kind == "content_block_start":
                    block = as_dict(event.get("content_block"))
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
        if not text.strip():
            raise limit_spent(self.name, request.max_output_tokens) if truncated else empty(self.name)
        reasoning = "".join(thoughts).strip()
        yield Completion(text, input_tokens, output_tokens, model, str(stop_reason or "unknown"), truncated, reasoning)

    def _stream_error(self, event: dict[str, Any]) -> ProviderError:
        """An error after the 200 headers (typically overloaded_error): report it as the HTTP error it stands for."""
        error = as_dict(event.get("error"))
        status = _STREAM_ERROR_STATUS.get(str(error.get("type")), 500)
        message = error.get("message")
        return status_error(self.name, status, message if isinstance(message, str) else None, self._api_key)
