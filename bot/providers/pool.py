"""One provider client per member, sharing the bot's aiohttp session, each wrapped in the retry layer."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping

import aiohttp

from bot.catalog import MemberSpec
from bot.providers import make_client
from bot.providers.base import ProviderClient
from bot.providers.limits import CountedClient, LimitedClient, ProviderStats
from bot.providers.resilience import BreakerPolicy, CircuitBreaker, ResilientClient, RetryPolicy, endpoint_of


class ProviderPool:
    """Builds clients lazily; the key is read from the environment when the client is first needed.

    Every client is a ResilientClient. Circuit breakers belong to endpoints (host and path), not members, so
    all members and councils using one provider share what is known about its health.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        env: Mapping[str, str] | None = None,
        *,
        retry: RetryPolicy | None = None,
        breaker: BreakerPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
        max_concurrency: int = 8,
    ) -> None:
        self._session = session
        self._env = env
        self._retry = retry or RetryPolicy()
        self._breaker_policy = breaker or BreakerPolicy()
        self._clock = clock
        self._rand = rand
        self._clients: dict[str, ProviderClient] = {}
        self._breakers: dict[str, CircuitBreaker] = {}
        self._max_concurrency = max_concurrency
        self._slots: dict[str, asyncio.Semaphore] = {}
        self.stats = ProviderStats()

    def __call__(self, spec: MemberSpec) -> ProviderClient:
        client = self._clients.get(spec.name)
        if client is None:
            inner = make_client(
                spec.provider,
                self._session,
                base_url=spec.base_url,
                api_key=spec.api_key(self._env),
                name=spec.name,
                rule=spec.model_rule,
            )
            endpoint = endpoint_of(spec.base_url)
            slots = self._slots.setdefault(endpoint, asyncio.Semaphore(self._max_concurrency))
            limited = LimitedClient(inner, slots, endpoint, self.stats)
            resilient = ResilientClient(
                limited, policy=self._retry, breaker=self.breaker_for(spec.base_url), rand=self._rand
            )
            client = CountedClient(resilient, self.stats)
            self._clients[spec.name] = client
        return client

    def breaker_for(self, base_url: str) -> CircuitBreaker:
        """The breaker every member at this endpoint shares (created on first use)."""
        endpoint = endpoint_of(base_url)
        breaker = self._breakers.get(endpoint)
        if breaker is None:
            breaker = CircuitBreaker(endpoint, self._breaker_policy, clock=self._clock)
            self._breakers[endpoint] = breaker
        return breaker
