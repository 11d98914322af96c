"""What every provider client speaks: a chat request in, a completion out."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Role = Literal["user", "assistant"]

# What went wrong, in terms a retry layer can act on. "quota" is a spent budget or credit (never worth retrying),
# "refused" a content-filter or safety refusal, "circuit_open" a call not even tried because the endpoint is paused,
# "limit" a reply that used the whole output limit before any text (a model that reasons first, with too small a
# max_output_tokens): asking again spends the same.
ErrorKind = Literal[
    "timeout",
    "connection",
    "http",
    "rate_limited",
    "auth",
    "not_found",
    "quota",
    "malformed",
    "empty",
    "cut",
    "refused",
    "circuit_open",
    "limit",
]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool a member may call, as its provider is told of it (bot/tools/ maps it to an MCP server's tool)."""

    name: str  # what the model calls it: ^[a-zA-Z0-9_-]{1,64}$, as both APIs require
    description: str
    input_schema: Mapping[str, Any]  # a JSON Schema with "type": "object" at its root


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A model asking for a tool: `id` is the provider's, and its result must name it."""

    id: str
    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool call gave back, as the model reads it (already delimited and cut by bot/tools/)."""

    call_id: str
    content: str
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class ChatTurn:
    """One turn of the conversation as the provider sees it; a user turn may carry images (members that see).

    Within a member's turn that uses tools, an assistant turn carries the calls it made (after its text, which
    may be empty) and the next user turn their results (before its text, which may be empty). `signed` holds
    the provider's own blocks that must go back unchanged with those calls (Claude's signed thinking).
    """

    role: Role
    content: str
    images: tuple[ImagePart, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    tool_results: tuple[ToolResult, ...] = ()
    signed: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image a human shared, as it is sent: PNG, JPEG, GIF or WebP bytes within the providers' limits."""

    media_type: str
    data: bytes
    width: int
    height: int

    def base64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A provider-neutral request: the system prompt, alternating turns starting with a user turn."""

    model: str
    system: str
    turns: tuple[ChatTurn, ...]
    max_output_tokens: int
    temperature: float | None = None
    # Anthropic's extended thinking for this call: "adaptive", or a budget of thinking tokens (None: off).
    thinking: str | int | None = None
    # The tools the model may call in this request (none: it is not told of any).
    tools: tuple[ToolSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class Completion:
    """A finished reply and what it cost.

    `truncated`: the reply stopped at the output limit (max_output_tokens) rather than where the model meant
    to end it (Anthropic's stop_reason "max_tokens", OpenAI's finish_reason "length"), after any continuations.
    """

    text: str
    input_tokens: int
    output_tokens: int
    model: str
    finish_reason: str
    truncated: bool = False
    # The model's reasoning, apart from its answer (Claude's thinking blocks, DeepSeek's reasoning_content, other
    # providers' reasoning, or <think> tags before the answer): never shown in the thread nor read by others.
    reasoning: str = ""
    # The tools the model asked for instead of (or after some) text: the reply goes on once their results are
    # sent back. `signed`: the blocks to send back with them unchanged (see ChatTurn).
    tool_calls: tuple[ToolCall, ...] = ()
    signed: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class StreamDelta:
    """A piece of text as it arrives while streaming."""

    text: str


@dataclass(slots=True)
class ProviderError(Exception):
    """A call that did not produce a completion. `kind` lets callers decide what to do about it."""

    kind: ErrorKind
    message: str
    status: int | None = None
    retry_after: float | None = None
    provider: str = field(default="")
    # The provider's own word on retrying (the x-should-retry header the official SDKs obey): None when unsaid.
    should_retry: bool | None = None
    # The host could not be reached at all (refused, DNS, TLS, connect timeout): every model on it is affected.
    unreachable: bool = False
    # For kind "timeout": which limit ran out ("first_token", "idle" or "total"; see bot/providers/timeouts.py).
    timer: str | None = None

    def __str__(self) -> str:
        return self.message


class ProviderClient(Protocol):
    """A chat model behind HTTP. Implementations never log or echo their API key."""

    name: str

    async def complete(self, request: ChatRequest, *, timeout: float) -> Completion:
        """Send the request and return the whole reply."""
        ...

    def stream(self, request: ChatRequest, *, timeout: float) -> AsyncIterator[StreamDelta | Completion]:
        """Yield text deltas as they arrive, then the final Completion (with usage) last."""
        ...
