"""Per-endpoint concurrency limits and call statistics, around every member's client.

A busy server runs many councils against the same few providers; without a cap it would trip their
rate limits all at once. Waiting for a slot counts against the caller's timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from bot.providers.base import ChatRequest, Completion, ProviderClient, ProviderError, StreamDelta


@dataclass
class ProviderStats:
    """What the pool has seen, for /metrics: calls, and the kinds of the calls that failed."""

    calls: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    in_flight: Counter[str] = field(default_factory=Counter)  # per endpoint
    # Members with several keys (bot/providers/keys.py), by the key's position in the list, never its value.
    key_calls: Counter[tuple[str, int]] = field(default_factory=Counter)  # (member, position)
    key_failures: Counter[tuple[str, int, str]] = field(default_factory=Counter)  # (member, position, kind)


class LimitedClient:
    """Holds one of the endpoint's slots for each attempt (retry waits hold none)."""

    def __init__(self, inner: ProviderClient, slots: asyncio.Semaphore, endpoint: str, stats: ProviderStats) -> None:
        self.name = inner.name
        self.inner = inner
        self.slots = slots
        self.endpoint = endpoint
        self.stats = stats

    async def _acquire(self, timeout: float) -> float:
        """Wait for a slot; return the time left of `timeout`."""
        started = time.monotonic()
        try:
            await asyncio.wait_for(self.slots.acquire(), timeout)
        except TimeoutError:
            raise ProviderError(
                "timeout", f"{self.name}: no free connection to the provider within {timeout:g}s", provider=self.name
            ) from None
        self.stats.in_flight[self.endpoint] += 1
        return timeout - (time.monotonic() - started)

    def _release(self) -> None:
        self.stats.in_flight[self.endpoint] -= 1
        self.slots.release()

    async def complete(self, request: ChatRequest, *, timeout: float) -> Completion:
        left = await self._acquire(timeout)
        try:
            return await self.inner.complete(request, timeout=left)
        finally:
            self._release()

    async def stream(self, request: ChatRequest, *, timeout: float) -> AsyncIterator[StreamDelta | Completion]:
        left = await self._acquire(timeout)
        try:
            async for item in self.inner.stream(request, timeout=left):
                yield item
        finally:
            self._release()


class CountedClient:
    """Counts whole calls and the kinds of their final failures (after retries)."""

    def __init__(self, inner: ProviderClient, stats: ProviderStats) -> None:
        self.name = inner.name
        self.inner = inner
        self.stats = stats

    async def complete(self, request: ChatRequest, *, timeout: float) -> Completion:
        self.stats.calls += 1
        try:
            return await self.inner.complete(request, timeout=timeout)
        except ProviderError as error:
            self.stats.errors[error.kind] += 1
            raise

    async def stream(self, request: ChatRequest, *, timeout: float) -> AsyncIterator[StreamDelta | Completion]:
        self.stats.calls += 1
        try:
            async for item in self.inner.stream(request, timeout=timeout):
                yield item
        except ProviderError as error:
            self.stats.errors[error.kind] += 1
            raise
