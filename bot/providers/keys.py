"""Several API keys for one member: calls spread over them, and the member outlasts a spent or revoked key.

A member's catalog entry may name several variables, or one variable may hold several keys (bot/catalog.py). Each
key gets a client of its own; the ring sends each call to the next usable key in turn. A key the provider refuses
(401, 403) is set aside until the bot restarts, with a log line naming its position, never its value. A key whose
quota or credit is spent (a 429 or 402 that says so, OpenAI's `insufficient_quota`) rests until the time the
provider gave, or QUOTA_REST. A key that is only rate limited rests for its retry-after while another key takes
the call. The member fails only when no key is left: then the error says how many keys are out and why.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from bot.providers.base import ChatRequest, Completion, ProviderClient, ProviderError, StreamDelta
from bot.providers.limits import ProviderStats

log = logging.getLogger(__name__)

QUOTA_REST = 3600.0  # seconds a key with a spent quota rests when the provider does not say until when
RATE_REST = 1.0  # seconds a rate-limited key rests when the provider does not say


@dataclass
class _Key:
    position: int
    client: ProviderClient
    set_aside: bool = False  # refused (401/403): not used again in this process
    resting_until: float = 0.0
    resting_why: str = ""

    def usable(self, now: float) -> bool:
        return not self.set_aside and now >= self.resting_until


@dataclass(frozen=True, slots=True)
class KeyStatus:
    keys: int
    usable: int


class KeyRing:
    """A ProviderClient over one client per key (see the module's docstring)."""

    def __init__(
        self,
        name: str,
        clients: Sequence[ProviderClient],
        stats: ProviderStats,
        *,
        clock: Callable[[], float] = time.monotonic,
        quota_rest: float = QUOTA_REST,
    ) -> None:
        self.name = name
        self._keys = [_Key(position, client) for position, client in enumerate(clients, start=1)]
        self._stats = stats
        self._clock = clock
        self._quota_rest = quota_rest
        self._turn = 0

    def status(self) -> KeyStatus:
        now = self._clock()
        return KeyStatus(len(self._keys), sum(key.usable(now) for key in self._keys))

    async def complete(self, request: ChatRequest, *, timeout: float) -> Completion:
        tried: set[int] = set()
        while True:
            key = self._take(tried)
            try:
                return await key.client.complete(request, timeout=timeout)
            except ProviderError as error:
                self._failed(key, error, tried)

    async def stream(self, request: ChatRequest, *, timeout: float) -> AsyncIterator[StreamDelta | Completion]:
        tried: set[int] = set()
        while True:
            key = self._take(tried)
            started = False
            try:
                async for item in key.client.stream(request, timeout=timeout):
                    started = True
                    yield item
                return
            except ProviderError as error:
                if started:  # words were shown: another key cannot take the reply back
                    self._stats.key_failures[(self.name, key.position, error.kind)] += 1
                    raise
                self._failed(key, error, tried)

    # -- inside ----------------------------------------------------------------------------------------

    def _take(self, tried: set[int]) -> _Key:
        """The next usable key not tried in this call, in turn; raises when there is none."""
        now = self._clock()
        count = len(self._keys)
        for step in range(count):
            key = self._keys[(self._turn + step) % count]
            if key.position not in tried and key.usable(now):
                self._turn = (self._turn + step + 1) % count
                tried.add(key.position)
                self._stats.key_calls[(self.name, key.position)] += 1
                return key
        raise self._none_left(now)

    def _failed(self, key: _Key, error: ProviderError, tried: set[int]) -> None:
        """Put the key aside or to rest when the error is the key's; re-raise unless another key may answer."""
        self._stats.key_failures[(self.name, key.position, error.kind)] += 1
        now = self._clock()
        count = len(self._keys)
        if error.kind == "auth":
            key.set_aside = True
            log.warning("%s: key %d of %d set aside until restart: %s", self.name, key.position, count, error.message)
        elif error.kind == "quota":
            rest = error.retry_after if error.retry_after is not None else self._quota_rest
            key.resting_until, key.resting_why = now + rest, "its quota is spent"
            log.warning("%s: key %d of %d rests %.0f s: %s", self.name, key.position, count, rest, error.message)
        elif error.kind == "rate_limited" and self._another(now, tried):
            rest = error.retry_after if error.retry_after is not None else RATE_REST
            key.resting_until, key.resting_why = now + rest, "rate limited"
        else:
            raise error  # not the key's fault (or no other key): the retry layer above decides
        if not self._another(now, tried):
            raise self._none_left(now, error) from error

    def _another(self, now: float, tried: set[int]) -> bool:
        return any(key.position not in tried and key.usable(now) for key in self._keys)

    def _none_left(self, now: float, last: ProviderError | None = None) -> ProviderError:
        aside = sum(key.set_aside for key in self._keys)
        resting = [key for key in self._keys if not key.set_aside and not key.usable(now)]
        parts = []
        if aside:
            parts.append(f"{aside} refused (HTTP 401/403)")
        if resting:
            soonest = min(key.resting_until for key in resting) - now
            parts.append(f"{len(resting)} resting ({resting[0].resting_why}; the first is back in {soonest:.0f}s)")
        why = "; ".join(parts) or "every key failed this call"
        if last is not None and last.kind not in ("auth", "quota", "rate_limited"):
            return last
        kind = last.kind if last is not None else ("quota" if resting else "auth")
        retry_after = min((key.resting_until for key in resting), default=now) - now if resting else None
        detail = f": {last.message}" if last is not None else ""
        return ProviderError(
            kind,
            f"{self.name}: none of its {len(self._keys)} keys can answer now ({why}){detail}",
            status=last.status if last is not None else None,
            retry_after=retry_after if kind == "rate_limited" else None,
            provider=self.name,
        )
