"""Waiting out what passes: a database or a Discord that does not answer for a while is a wait, not a failure.

A council's runner that meets such an outage waits with backoff and goes on from where it was, by itself, once
the database answers again (bot/council/engine.py). Work that cost a provider call (a member's reply, a chair's
choice) is never dropped for an outage: its result is kept in memory and stored `patiently`, so the provider is
not asked, and paid, twice. The people in the thread see the council waiting (the publisher's `waiting`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from bot.council.publisher import PlaceUnavailable
from storage.database import is_unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")


def is_transient(error: BaseException) -> bool:
    """Whether `error` passes by itself: the database away or busy, or Discord not answering."""
    return isinstance(error, PlaceUnavailable) or is_unavailable(error)


def outage_reason(error: BaseException) -> str:
    """What the people of a council are told they are waiting for."""
    return "Discord is not answering" if isinstance(error, PlaceUnavailable) else "the database is not answering"


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits between tries: `first`, doubling up to `ceiling`, each with up to a fifth of jitter so that
    the runners of many councils do not come back all at once."""

    first: float = 0.5
    ceiling: float = 30.0

    def delay(self, attempt: int) -> float:
        base = min(self.ceiling, self.first * 2 ** max(attempt - 1, 0))
        return base * (0.8 + 0.2 * random.random())


@dataclass
class OutageStats:
    """What this process has met, for /metrics."""

    database_errors: int = 0  # failed statements or connections that were waited out
    discord_errors: int = 0  # posts that met a Discord that did not answer
    runner_restarts: int = 0  # council runners that went on again after a wait or that the supervisor restarted
    waiting: set[int] = field(default_factory=set)  # councils waiting out an outage now

    def count(self, error: BaseException) -> None:
        if isinstance(error, PlaceUnavailable):
            self.discord_errors += 1
        else:
            self.database_errors += 1


# Told when a council starts (a reason) and stops (None) waiting out an outage.
WaitingHook = Callable[[int, str | None], None]


class Patience:
    """Retries what meets an outage, with backoff, until it works or the caller is cancelled."""

    def __init__(self, backoff: Backoff | None = None, *, on_waiting: WaitingHook | None = None) -> None:
        self.backoff = backoff or Backoff()
        self.stats = OutageStats()
        self.on_waiting = on_waiting

    async def call(self, attempt: Callable[[], Awaitable[T]], *, council_id: int | None = None) -> T:
        """`attempt()`'s result, trying again while it fails for a reason that passes; other errors raise."""
        tries = 0
        while True:
            try:
                result = await attempt()
            except Exception as error:
                if not is_transient(error):
                    raise
                tries += 1
                await self.wait(error, tries, council_id=council_id)
                continue
            if tries:
                self.recovered(council_id)
            return result

    async def wait(self, error: BaseException, tries: int, *, council_id: int | None = None) -> None:
        """One wait after the `tries`-th failure for `error` (which passes)."""
        self.stats.count(error)
        if tries == 1:
            log.warning(
                "Council %s: %s (%s); waiting for it",
                council_id if council_id is not None else "-",
                outage_reason(error),
                type(error).__name__,
            )
            if council_id is not None and council_id not in self.stats.waiting:
                self.stats.waiting.add(council_id)
                if self.on_waiting is not None:
                    self.on_waiting(council_id, outage_reason(error))
        await asyncio.sleep(self.backoff.delay(tries))

    def recovered(self, council_id: int | None) -> None:
        if council_id is not None and council_id in self.stats.waiting:
            self.stats.waiting.discard(council_id)
            log.info("Council %s: the outage is over; it goes on", council_id)
            if self.on_waiting is not None:
                self.on_waiting(council_id, None)
