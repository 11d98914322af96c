"""Chat model clients behind one interface; make_client picks the wire format."""

from __future__ import annotations

import aiohttp

from bot.providers.anthropic import AnthropicClient
from bot.providers.base import ChatRequest, ChatTurn, Completion, ProviderClient, ProviderError, StreamDelta
from bot.providers.echo import EchoClient
from bot.providers.model_rules import ModelRule
from bot.providers.openai_compat import OpenAICompatClient
from bot.providers.resilience import BreakerPolicy, CircuitBreaker, ResilientClient, RetryPolicy, is_retriable
from bot.providers.timeouts import ReplyTimeouts

__all__ = [
    "AnthropicClient",
    "BreakerPolicy",
    "ChatRequest",
    "ChatTurn",
    "CircuitBreaker",
    "Completion",
    "ModelRule",
    "OpenAICompatClient",
    "ProviderClient",
    "ProviderError",
    "ReplyTimeouts",
    "ResilientClient",
    "RetryPolicy",
    "StreamDelta",
    "is_retriable",
    "make_client",
]


def make_client(
    provider: str,
    session: aiohttp.ClientSession,
    *,
    base_url: str,
    api_key: str | None,
    name: str | None = None,
    rule: ModelRule | None = None,
    timeouts: ReplyTimeouts | None = None,
) -> ProviderClient:
    """A client for `provider` ("anthropic" or "openai", the latter for every OpenAI-compatible API).

    `name` is what error messages call the provider ("DeepSeek: rate limited ..."); it defaults to `provider`.
    `rule` is what the model accepts (bot/providers/model_rules.py); by default the table's rule for the model.
    `timeouts` bound the first token and the silences of each attempt (bot/providers/timeouts.py).
    """
    if provider == "echo":  # the offline rehearsal member: no network at all
        return EchoClient(name or provider)
    if provider == "anthropic":
        if not api_key:
            raise ValueError("the anthropic provider needs an API key")
        return AnthropicClient(session, base_url=base_url, api_key=api_key, name=name or provider, timeouts=timeouts)
    if provider == "openai":
        return OpenAICompatClient(
            session, base_url=base_url, api_key=api_key, name=name or provider, rule=rule, timeouts=timeouts
        )
    raise ValueError(f"unknown provider {provider!r} (expected 'anthropic' or 'openai')")
