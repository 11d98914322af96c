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
from bot.providers.continuation import ContinuingClient
from bot.providers.keys import KeyRing, KeyStatus
from bot.providers.limits import CountedClient, LimitedClient, ProviderStats
from bot.providers.resilience import BreakerPolicy, CircuitBreaker, ResilientClient, RetryPolicy, endpoint_of
from bot.providers.timeouts import ReplyTimeouts
from bot.settings import Settings


class ProviderPool:
    """Builds clients lazily; the key is read from the environment when the client is first needed.

    Every client is a ResilientClient with two circuit breakers, shared by every member and council that uses
    them: the endpoint's (host and path), which hears only whether the host can be reached, and the model's
    at that endpoint, which hears the model's own failures. One model failing pauses that model; a host
    that is down pauses every model on it.
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
        timeouts: ReplyTimeouts | None = None,
    ) -> None:
        self._session = session
        self._timeouts = timeouts or ReplyTimeouts()
        self._env = env
        self._retry = retry or RetryPolicy()
        self._breaker_policy = breaker or BreakerPolicy()
        self._clock = clock
        self._rand = rand
        self._clients: dict[str, ProviderClient] = {}
        self._breakers: dict[tuple[str, str | None], CircuitBreaker] = {}
        self._max_concurrency = max_concurrency
        self._slots: dict[str, asyncio.Semaphore] = {}
        self.stats = ProviderStats()
        self._rings: dict[str, KeyRing] = {}

    def __call__(self, spec: MemberSpec) -> ProviderClient:
        client = self._clients.get(spec.name)
        if client is None:
            keys = spec.api_keys(self._env)
            clients = [
                make_client(
                    spec.provider,
                    self._session,
                    base_url=spec.base_url,
                    api_key=key,
                    name=spec.name,
                    rule=spec.model_rule,
                    timeouts=self._timeouts,
                )
                for key in (keys or (None,))
            ]
            inner = clients[0]
            if len(clients) > 1:  # several keys: calls spread over them, a spent or refused one is set aside
                inner = self._rings[spec.name] = KeyRing(spec.name, clients, self.stats, clock=self._clock)
            endpoint = endpoint_of(spec.base_url)
            slots = self._slots.setdefault(endpoint, asyncio.Semaphore(self._max_concurrency))
            limited = LimitedClient(inner, slots, endpoint, self.stats)
            resilient = ResilientClient(
                limited,
                policy=self._retry,
                breaker=self.breaker_for(spec.base_url, spec.model),
                host_breaker=self.breaker_for(spec.base_url),
                rand=self._rand,
            )
            client = CountedClient(resilient, self.stats)
            if spec.max_continuations:
                # Outermost: each continuation is a call of its own, retried and counted like any other.
                client = ContinuingClient(client, spec.max_continuations)
            self._clients[spec.name] = client
        return client

    def key_status(self, spec: MemberSpec) -> KeyStatus:
        """How many keys the member has and how many may be used now (never the keys)."""
        ring = self._rings.get(spec.name)
        if ring is not None:
            return ring.status()
        count = len(spec.api_keys(self._env))
        return KeyStatus(count, count)

    def breaker_for(self, base_url: str, model: str | None = None) -> CircuitBreaker:
        """The endpoint's breaker, or with `model` that model's at the endpoint (created on first use)."""
        key = (endpoint_of(base_url), model)
        breaker = self._breakers.get(key)
        if breaker is None:
            label = "provider" if model is None else f"model {model}"
            breaker = CircuitBreaker(key[0], self._breaker_policy, clock=self._clock, label=label)
            self._breakers[key] = breaker
        return breaker


def pool_for(session: aiohttp.ClientSession, settings: Settings, env: Mapping[str, str] | None = None) -> ProviderPool:
    """The pool as the settings configure it: the bot and the terminal rehearsal call providers alike."""
    return ProviderPool(
        session,
        env,
        max_concurrency=settings.provider_max_concurrency,
        timeouts=ReplyTimeouts(settings.provider_first_token_timeout, settings.provider_idle_timeout),
    )
