"""Any OpenAI-style /chat/completions endpoint: OpenAI, DeepSeek, Groq, Gemini's compat layer, Ollama."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from bot.providers.base import ChatRequest, ChatTurn, Completion, StreamDelta, ToolCall
from bot.providers.errors import (
    as_dict,
    cut,
    empty,
    error_code_from_body,
    error_message_from_body,
    http_error,
    json_object,
    limit_spent,
    malformed,
    refused,
    status_error,
    token_count,
    transport_errors,
)
from bot.providers.model_rules import ModelRule, rule_for
from bot.providers.reasoning import InlineThinking, split
from bot.providers.sse import iter_sse
from bot.providers.timeouts import ReplyClock, ReplyTimeouts

# What a mid-stream {"error": ...} chunk's code or type stands for; anything else reads as a server error.
_STREAM_ERROR_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "invalid_api_key": 401,
    "authentication_error": 401,
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
}

# Gemini, Azure and OpenAI itself report a filtered answer this way, with or without the text so far.
_CONTENT_FILTER = "content_filter"
# A reply cut at max_tokens / max_completion_tokens (OpenAI, DeepSeek, Groq, Gemini's compat layer, Ollama).
_LENGTH = "length"


class OpenAICompatClient:
    """A ProviderClient for POST {base_url}/chat/completions; base_url already carries the version path."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        api_key: str | None,
        name: str = "openai",
        rule: ModelRule | None = None,
        timeouts: ReplyTimeouts | None = None,
    ) -> None:
        self.name = name
        self._timeouts = timeouts or ReplyTimeouts()
        self._session = session
        self._url = f"{base_url.rstrip('/')}/chat/completions"
        self._api_key = api_key
        # The member's own rule (the table's, with the catalog's overrides); without one, looked up per request.
        self._rule = rule

    def __repr__(self) -> str:
        # Deliberately without the key: reprs end up in logs and tracebacks.
        return f"OpenAICompatClient(name={self.name!r}, url={self._url!r})"

    def _headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        # Local servers (Ollama) take no key; sending "Bearer None" would be worse than nothing.
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        return headers

    def _body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        messages = [{"role": "system", "content": request.system}] if request.system else []
        messages += [message for turn in request.turns for message in _messages(turn)]
        rule = self._rule or rule_for("openai", request.model)
        body: dict[str, Any] = {"model": request.model, "messages": messages}
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": _plain(tool.input_schema),
                    },
                }
                for tool in request.tools
            ]
        body[rule.token_limit_param] = request.max_output_tokens
        if request.temperature is not None and rule.accepts_temperature:
            body["temperature"] = request.temperature
        if stream:
            # Without include_usage a stream reports no token counts at all.
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
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
        data = json_object(self.name, body)
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise malformed(self.name, "no choices")
        finish_reason = choices[0].get("finish_reason")
        if finish_reason == _CONTENT_FILTER:
            raise refused(self.name, "content filter")
        message = choices[0].get("message")
        if not isinstance(message, dict):
            raise malformed(self.name, "choice without message")
        text = message.get("content")
        refusal = message.get("refusal")
        if isinstance(refusal, str) and refusal.strip() and not (isinstance(text, str) and text.strip()):
            raise refused(self.name, "model refusal")
        # content is null when the model only refused or called tools: nothing for the council to read.
        if text is not None and not isinstance(text, str):
            raise malformed(self.name, "content is not a string")
        truncated = finish_reason == _LENGTH
        text, inline = split(text or "")
        calls = _CallParts(self.name)
        raw_calls = message.get("tool_calls")
        if raw_calls is not None and not isinstance(raw_calls, list):
            raise malformed(self.name, "tool_calls is not a list")
        calls.feed(raw_calls or [])
        tool_calls = calls.finish(truncated)
        if not text.strip() and not tool_calls:
            raise limit_spent(self.name, request.max_output_tokens) if truncated else empty(self.name)
        usage = as_dict(data.get("usage"))
        return Completion(
            text=text,
            input_tokens=token_count(usage.get("prompt_tokens")),
            output_tokens=token_count(usage.get("completion_tokens")),
            model=str(data.get("model") or request.model),
            finish_reason=str(finish_reason or "unknown"),
            truncated=truncated,
            reasoning=_joined(_reasoning_of(message), inline),
            tool_calls=tool_calls,
            signed=_returned_reasoning(message.get("reasoning_content"), tool_calls),
        )

    async def stream(self, request: ChatRequest, *, timeout: float) -> AsyncIterator[StreamDelta | Completion]:
        parts: list[str] = []
        thoughts: list[str] = []
        returned: list[str] = []  # DeepSeek's reasoning_content alone, which must go back with tool calls
        inline = InlineThinking()
        calls = _CallParts(self.name)
        model = request.model
        input_tokens = output_tokens = 0
        finish_reason: str | None = None
        done = False
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
                if sse.data.strip() == "[DONE]":
                    done = True
                    break
                chunk = json_object(self.name, sse.data)
                if chunk.get("error"):
                    # Some compatible servers report failures mid-stream as a data line after a 200.
                    code = error_code_from_body(sse.data)
                    status = _STREAM_ERROR_STATUS.get(code or "", 500)
                    raise status_error(self.name, status, error_message_from_body(sse.data), self._api_key, code=code)
                model = str(chunk.get("model") or model)
                choices = chunk.get("choices")
                if isinstance(choices, list) and choices:
                    choice = as_dict(choices[0])
                    delta = as_dict(choice.get("delta"))
                    if _has_output(delta):
                        clock.token()
                    thoughts.append(_reasoning_of(delta))
                    if isinstance(delta.get("reasoning_content"), str):
                        returned.append(delta["reasoning_content"])
                    if isinstance(delta.get("tool_calls"), list):
                        calls.feed(delta["tool_calls"])
                    content = delta.get("content")
                    shown = inline.feed(content) if isinstance(content, str) and content else ""
                    if shown:
                        parts.append(shown)
                        yield StreamDelta(shown)
                    finish_reason = choice.get("finish_reason") or finish_reason
                # Groq has reported streaming usage under x_groq instead of at the top level.
                usage = as_dict(chunk.get("usage")) or as_dict(as_dict(chunk.get("x_groq")).get("usage"))
                if usage:
                    input_tokens = token_count(usage.get("prompt_tokens"), input_tokens)
                    output_tokens = token_count(usage.get("completion_tokens"), output_tokens)
        # Checked before completeness: a filtered stream is refused even if the connection then dropped.
        if finish_reason == _CONTENT_FILTER:
            raise refused(self.name, "content filter")
        if not done:
            raise cut(self.name)
        tail = inline.finish()
        if tail:
            parts.append(tail)
            yield StreamDelta(tail)
        text = "".join(parts)
        truncated = finish_reason == _LENGTH
        tool_calls = calls.finish(truncated)
        if not text.strip() and not tool_calls:
            raise limit_spent(self.name, request.max_output_tokens) if truncated else empty(self.name)
        reasoning = _joined("".join(thoughts), inline.reasoning)
        finish = str(finish_reason or "unknown")
        signed = _returned_reasoning("".join(returned), tool_calls)
        yield Completion(text, input_tokens, output_tokens, model, finish, truncated, reasoning, tool_calls, signed)


def _messages(turn: ChatTurn) -> list[dict[str, Any]]:
    """A turn as messages: its calls on the assistant message, its results as one tool message each (the API
    has no error flag, so an error says so in words), then whatever the person wrote."""
    if turn.tool_calls:
        calls = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(_plain(call.arguments))},
            }
            for call in turn.tool_calls
        ]
        message = {"role": turn.role, "content": turn.content if turn.content.strip() else None, "tool_calls": calls}
        for block in turn.signed:  # DeepSeek's reasoning behind the calls, which its API wants back with them
            if isinstance(block.get("reasoning_content"), str):
                message["reasoning_content"] = block["reasoning_content"]
        return [message]
    if not turn.tool_results:
        return [{"role": turn.role, "content": _content(turn)}]
    messages: list[dict[str, Any]] = [
        {"role": "tool", "tool_call_id": result.call_id, "content": _result_text(result.content, result.is_error)}
        for result in turn.tool_results
    ]
    if turn.content.strip() or turn.images:
        messages.append({"role": turn.role, "content": _content(turn)})
    return messages


def _result_text(content: str, is_error: bool) -> str:
    return f"Error: {content}" if is_error else content


def _plain(value: Any) -> Any:
    """JSON-ready copies of what may arrive as read-only mappings and tuples (the body is serialised as JSON)."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


class _CallParts:
    """A reply's tool calls, whole (`message.tool_calls`) or in pieces (`delta.tool_calls`): each piece names the
    call by `index`, the first also carries its id and name, and the arguments' JSON text arrives in parts."""

    def __init__(self, provider: str) -> None:
        self._provider = provider
        self._calls: dict[int, dict[str, Any]] = {}

    def feed(self, pieces: list[Any]) -> None:
        for position, piece in enumerate(pieces):
            if not isinstance(piece, dict):
                raise malformed(self._provider, "tool call is not an object")
            index = piece.get("index")
            call = self._calls.setdefault(index if isinstance(index, int) else position, {"arguments": []})
            function = as_dict(piece.get("function"))
            for key, value in (("id", piece.get("id")), ("name", function.get("name"))):
                if isinstance(value, str) and value:
                    call[key] = value
            arguments = function.get("arguments")
            if isinstance(arguments, str):
                call["arguments"].append(arguments)
            elif arguments is not None:
                raise malformed(self._provider, "tool call arguments are not a string")

    def finish(self, truncated: bool) -> tuple[ToolCall, ...]:
        calls: list[ToolCall] = []
        for index in sorted(self._calls):
            call, raw = self._calls[index], "".join(self._calls[index]["arguments"])
            try:
                arguments = json.loads(raw) if raw.strip() else {}
            except ValueError:
                if truncated:
                    continue  # the output limit cut the call short: it was never made
                raise malformed(self._provider, "tool call arguments are not valid JSON") from None
            if "id" not in call or "name" not in call:
                raise malformed(self._provider, "tool call without id or name")
            if not isinstance(arguments, dict):
                raise malformed(self._provider, "tool call arguments are not an object")
            calls.append(ToolCall(call["id"], call["name"], arguments))
        return tuple(calls)


def _content(turn: ChatTurn) -> str | list[dict[str, Any]]:
    """A turn's text, then its images as `image_url` parts with data URLs when it has any."""
    if not turn.images:
        return turn.content
    images = [
        {"type": "image_url", "image_url": {"url": f"data:{image.media_type};base64,{image.base64()}"}}
        for image in turn.images
    ]
    return [{"type": "text", "text": turn.content}, *images]


def _reasoning_of(message: dict[str, Any]) -> str:
    """A message's or delta's reasoning field: DeepSeek's and vLLM's `reasoning_content`, OpenRouter's and Groq's
    `reasoning` (a string; structured `reasoning_details` are left out)."""
    for key in ("reasoning_content", "reasoning"):
        value = message.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def _returned_reasoning(reasoning: object, tool_calls: tuple[ToolCall, ...]) -> tuple[dict[str, str], ...]:
    """What must go back with a reply's tool calls: DeepSeek's reasoning_content (thinking mode refuses a later
    request whose assistant message with tool calls lacks it)."""
    return ({"reasoning_content": reasoning},) if tool_calls and isinstance(reasoning, str) and reasoning else ()


def _joined(*reasonings: str) -> str:
    return "\n\n".join(part.strip() for part in reasonings if part.strip())


def _has_output(delta: dict[str, Any]) -> bool:
    """Whether a stream chunk carries model output: text, or reasoning (DeepSeek's reasoning_content, others'
    reasoning), so a model that thinks aloud has started; the first chunk's bare role does not count."""
    return any(isinstance(value, str) and value for key, value in delta.items() if key != "role")
