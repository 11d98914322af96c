"""How long one attempt may take, in three parts: the wait for the first token, the longest silence once the
reply flows, and the total the caller allows.

A single total timeout (what aiohttp's ClientTimeout(total=…) gives) cuts a long reply that is still
arriving steadily, while a hung provider is only noticed when the whole budget is gone. The official SDKs
bound the silence between reads instead (their read timeout) and leave the whole reply a generous total;
this does the same, and says which limit ran out.

The deadlines are checked only while the client waits for the network (`waiting()`), never while the
caller handles a delta it was given: a slow consumer is not the provider's fault, and a timer must not
cancel the caller's own work.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

import aiohttp

from bot.providers.base import ProviderError

Timer = Literal["first_token", "idle", "total"]


@dataclass(frozen=True, slots=True)
class ReplyTimeouts:
    """The limits of one attempt besides the caller's total budget.

    first_token: seconds from sending the request to the first token of the reply (any output, reasoning
        included, so a model that thinks aloud is not cut); for a reply asked for whole (not streamed), to
        the whole reply, which arrives at once.
    idle: the longest silence, in seconds, once the reply has started (what the SDKs call the read timeout).
    connect: seconds to open the connection; a host that cannot be reached in that time counts as down.
    """

    first_token: float = 120.0
    idle: float = 30.0
    connect: float = 10.0

    def __post_init__(self) -> None:
        if min(self.first_token, self.idle, self.connect) <= 0:
            raise ValueError("ReplyTimeouts must be positive")


class ReplyClock:
    """One attempt's deadlines. `total` is what is left of the caller's budget for this attempt.

    `whole`: the reply is asked for in one piece (complete()), so there is no first token to wait for,
    only the reply.
    """

    def __init__(self, provider: str, timeouts: ReplyTimeouts, total: float, *, whole: bool = False) -> None:
        self._provider = provider
        self._timeouts = timeouts
        self._total = total
        self._whole = whole
        now = _now()
        self._total_at = now + total
        self._first_at = now + timeouts.first_token
        self._last_heard: float | None = None  # set by the first token; then by every piece of the body

    @property
    def connect_timeout(self) -> aiohttp.ClientTimeout:
        """aiohttp's own timeout for the request: only the connection, the rest is this clock's."""
        return aiohttp.ClientTimeout(total=None, sock_connect=self._timeouts.connect)

    def token(self) -> None:
        """The reply has started: from now on, only silence and the total count."""
        self._last_heard = _now()

    def alive(self) -> None:
        """Some of the body arrived; once the reply has started, that restarts the silence timer."""
        if self._last_heard is not None:
            self._last_heard = _now()

    def _deadline(self) -> tuple[float, Timer]:
        if self._last_heard is None:
            running = (self._first_at, "first_token")
        else:
            running = (self._last_heard + self._timeouts.idle, "idle")
        return (self._total_at, "total") if self._total_at <= running[0] else running  # type: ignore[return-value]

    @asynccontextmanager
    async def waiting(self) -> AsyncIterator[None]:
        """Wrap one wait for the network; if a deadline passes meanwhile, raise the timeout that says which."""
        when, timer = self._deadline()
        try:
            async with asyncio.timeout_at(when) as scope:
                yield
        except TimeoutError:
            if not scope.expired():
                raise  # someone else's timeout (aiohttp's connect timeout): not ours to name
            raise self._expired(timer) from None

    def _expired(self, timer: Timer) -> ProviderError:
        name, limits = self._provider, self._timeouts
        if timer == "total":
            message = f"{name}: not finished within {self._total:g} s"
        elif timer == "idle":
            message = f"{name}: silent for {limits.idle:g} s mid-reply"
        elif self._whole:
            message = f"{name}: no reply within {limits.first_token:g} s"
        else:
            message = f"{name}: no first token within {limits.first_token:g} s"
        return ProviderError("timeout", message, provider=name, timer=timer)


def _now() -> float:
    return asyncio.get_running_loop().time()
