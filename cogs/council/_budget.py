"""Discord's rate budget, spent deliberately: every request the publisher makes asks here first.

Discord limits requests per route bucket (a webhook takes about 5 per 2 s, message creation in a channel about 5
per 5 s), per bot (50 per second, the global limit), and bans for an hour a bot that makes 10,000 invalid
requests (401, 403, 429) in 10 minutes. discord.py only reacts: it sleeps after a 429. The budget acts before:

- A request waits until its bucket and the global budget have room, so none is sent that Discord would refuse.
  Buckets start from the values Discord is known to use and learn the real ones from its response headers
  (`learn`, fed by the bot's HTTP trace); a 429 that happens anyway empties the bucket for its retry_after.
- Requests waiting on the same bucket go out by priority (moderators' notices before a member's final words
  before the starter embeds before intermediate streaming edits), and within a priority in turn by council,
  so one busy council does not starve the others of a shared webhook.
- Under pressure, optional requests make way: an intermediate streaming edit or a typing indicator is simply
  not sent when its bucket has no room (`available`), so a streamed reply is edited less often as load rises
  and the next edit carries the newer words; its final edit always waits its turn.
- The global budget is shared by priority: the lower a request's priority, the less of the second's 50 it may
  take, so final words and notices keep room however many replies stream.
- Requests leave evenly paced at a little under the global limit, never in bursts (a burst repeats every second
  after it and reaches Discord bunched); a higher priority may fall further behind the pace before it waits.
- What actually leaves is counted too (`started`, fed by the bot's HTTP trace): discord.py's own retries and
  requests made outside the budget count against the global limit like the ones it released.
- Invalid requests are counted in a sliding 10-minute window; long before Discord's ban line the budget brakes
  (optional requests stop, the global share shrinks) until the count falls again.

Plain asyncio, no discord import: cogs/council/_publisher.py says which bucket each request belongs to.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import re
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum


class Priority(IntEnum):
    """Lower goes first."""

    NOTICE = 0  # moderators' notices, warnings to people
    WORDS = 1  # a member's words as stored, the bot's notices, a streamed reply's final edit
    STATUS = 2  # starter embeds and closing embeds
    PROGRESS = 3  # intermediate streaming edits and typing indicators: skipped rather than queued


# (limit, seconds) for buckets before Discord's headers say otherwise. Discord does not publish per-route limits;
# these are the values it is commonly observed to send.
KNOWN_BUCKETS: dict[str, tuple[int, float]] = {
    "webhook": (5, 2.0),  # execute, edit and delete through one webhook (id + token)
    "create": (5, 5.0),  # POST /channels/{id}/messages: the bot's own messages in one channel or thread
    "edit": (5, 5.0),  # PATCH and DELETE of the bot's messages in one channel
    "typing": (5, 5.0),
    "thread": (5, 5.0),  # thread creation in one channel
    "history": (5, 5.0),  # reading a channel's messages
    "webhooks": (5, 5.0),  # listing and creating a channel's webhooks
    "dm": (5, 5.0),  # a direct message to one person
}
UNKNOWN_BUCKET = (5, 5.0)
GLOBAL_PER_SECOND = 50  # requests a bot may make each second, interactions aside
# The part of the global budget each priority may use: the top keeps a small margin under Discord's 50 (a request
# counted on both sides of a second), the optional ones leave room for the words.
GLOBAL_SHARE = {Priority.NOTICE: 0.98, Priority.WORDS: 0.95, Priority.STATUS: 0.8, Priority.PROGRESS: 0.65}
# Requests go out evenly spaced at this part of the global limit, not in bursts: a burst that fills a second
# repeats every second after (a request makes room for the next one exactly a second later), and a burst that
# reaches Discord a little later than the one before it lands in the same second of Discord's count.
PACE_SHARE = 0.96
# How far behind its even pace the budget may fall for each priority and still send at once: the higher the
# priority, the longer the burst it may take when it has waited (a backlog of final words goes out before edits).
PACE_TOLERANCE = {Priority.NOTICE: 0.2, Priority.WORDS: 0.1, Priority.STATUS: 0.06, Priority.PROGRESS: 0.04}
INVALID_WINDOW = 600.0  # seconds: Discord bans 10,000 invalid requests in 10 minutes
INVALID_BAN_LINE = 10_000
INVALID_BRAKE = 1_000  # past this many in the window, optional requests stop and the global share halves
# A request the budget released starts within this many seconds, or it never will (the code that asked for it
# failed first, or discord.py answered it from its cache).
STARTS_WITHIN = 5.0
# A released request that starts later than this (held by discord.py's own limiter, or behind its global lock
# after a 429) reaches Discord in another second than the one it was counted in: it is counted again.
LATE_START = 0.25

BucketKey = tuple[str, Hashable]  # (kind from KNOWN_BUCKETS, its major parameter: a webhook or channel id)


@dataclass
class _Bucket:
    limit: int
    per: float
    remaining: int
    resets_at: float  # clock time at which `remaining` is `limit` again (0: not started)
    waiting: list[tuple[int, int, int, asyncio.Future[None]]] = field(default_factory=list)  # heap

    def refill(self, now: float) -> None:
        if now >= self.resets_at:
            self.remaining = self.limit
            self.resets_at = 0.0

    def take(self, now: float) -> None:
        if self.resets_at == 0.0:
            self.resets_at = now + self.per
        self.remaining -= 1

    def wait_time(self, now: float) -> float:
        self.refill(now)
        return 0.0 if self.remaining > 0 else max(self.resets_at - now, 0.0)


@dataclass
class BudgetStats:
    """What the budget has done, for /metrics and the benchmark."""

    sent: int = 0
    waited: int = 0  # requests that had to wait for room
    skipped: int = 0  # optional requests not sent (an intermediate edit, a typing indicator)
    unbudgeted: int = 0  # requests that started without the budget's release (discord.py's retries, others)
    late: int = 0  # released requests that started late, counted again when they did
    limited: int = 0  # 429s Discord answered anyway
    invalid_recent: int = 0  # 401/403/429 in the last 10 minutes
    braking: bool = False


class DiscordBudget:
    def __init__(
        self,
        *,
        clock: Callable[[], float] | None = None,
        global_per_second: int = GLOBAL_PER_SECOND,
        known: dict[str, tuple[int, float]] | None = None,
    ) -> None:
        """`known`: (limit, seconds) per kind of bucket until Discord's headers say otherwise."""
        self._clock = clock or time.monotonic
        self.global_per_second = global_per_second
        self.invalid_brake = INVALID_BRAKE
        self.known = known or KNOWN_BUCKETS
        self._buckets: dict[BucketKey, _Bucket] = {}
        self._global: deque[float] = deque()  # when each request of the last second went out
        self._global_pause_until = 0.0
        self._paced_until = 0.0  # when the even pace has room again (the theoretical arrival time of GCRA)
        self._unstarted: deque[float] = deque()  # when each released request not started yet was released
        self._invalid: deque[float] = deque()
        self._turns: dict[BucketKey, dict[Hashable, int]] = {}  # per bucket: requests each owner has had
        self._order = itertools.count()
        self.stats = BudgetStats()

    # -- asking ----------------------------------------------------------------------------------------

    def available(self, key: BucketKey, priority: Priority = Priority.PROGRESS) -> bool:
        """Whether a request could go out now without waiting (nobody queued before it, room in its bucket
        and in its share of the global budget). An optional request that is not available is skipped."""
        now = self._clock()
        bucket = self._bucket(key)
        if bucket.waiting or bucket.wait_time(now) > 0:
            return False
        if priority >= Priority.PROGRESS and self._braking(now):
            return False
        return self._global_wait(priority, now) == 0.0

    def report(self) -> BudgetStats:
        """The stats, with the invalid requests of the last 10 minutes counted now."""
        self._braking(self._clock())
        return self.stats

    def skip(self) -> None:
        """An optional request was not sent because it was not `available`."""
        self.stats.skipped += 1

    async def spend(self, key: BucketKey, priority: Priority = Priority.WORDS, *, owner: Hashable = None) -> None:
        """Wait until one request in `key` may go out, then count it as sent. Requests waiting on the same
        bucket go by priority, then in turn by owner (a council), then in order of arrival."""
        bucket = self._bucket(key)
        turns = self._turns.setdefault(key, {})
        rank = (int(priority), turns.get(owner, 0), next(self._order))
        turns[owner] = turns.get(owner, 0) + 1
        ticket: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (*rank, ticket)
        heapq.heappush(bucket.waiting, entry)
        waited = False
        try:
            while True:
                now = self._clock()
                if bucket.waiting[0] is entry:
                    delay = max(bucket.wait_time(now), self._global_wait(priority, now))
                    if delay == 0.0:
                        heapq.heappop(bucket.waiting)
                        bucket.take(now)
                        self._count_global(now)
                        self._forget_unstarted(now)
                        self._unstarted.append(now)
                        self.stats.sent += 1
                        self.stats.waited += waited
                        self._wake_next(bucket)
                        return
                    waited = True
                    await asyncio.sleep(delay)
                else:
                    waited = True
                    await ticket  # the one ahead wakes it when it leaves
                    ticket = asyncio.get_running_loop().create_future()
                    index = bucket.waiting.index(entry)
                    entry = (*rank, ticket)
                    bucket.waiting[index] = entry
        except BaseException:
            if entry in bucket.waiting:
                bucket.waiting.remove(entry)
                heapq.heapify(bucket.waiting)
                self._wake_next(bucket)
            raise

    def started(self, key: BucketKey | None) -> None:
        """discord.py began a request that counts against the global limit (the bot's HTTP trace): one the budget
        released, or one it never saw (discord.py's own retry after a 429, a request made outside the budget),
        which Discord counts all the same. Released requests are matched in order of release."""
        now = self._clock()
        self._forget_unstarted(now)
        if self._unstarted:
            released = self._unstarted.popleft()
            if now - released <= LATE_START:
                return
            self.stats.late += 1
            self._count_global(now)
            return
        self.stats.unbudgeted += 1
        self._count_global(now)
        if key is not None:
            bucket = self._bucket(key)
            bucket.refill(now)
            bucket.take(now)

    # -- what Discord says ---------------------------------------------------------------------------------

    def learn(self, key: BucketKey, *, limit: int, remaining: int, reset_after: float) -> None:
        """A response's X-RateLimit-Limit / -Remaining / -Reset-After for the bucket `key`."""
        now = self._clock()
        bucket = self._bucket(key)
        if limit > 0:
            bucket.limit = limit
            if remaining == limit - 1 and reset_after > 0:
                bucket.per = reset_after  # the first request of a window tells how long the window is
        # Requests of ours still in flight are counted already: keep the lower of the two counts.
        bucket.remaining = min(bucket.remaining, remaining) if bucket.resets_at else remaining
        bucket.resets_at = now + max(reset_after, 0.0)

    def limited(self, key: BucketKey | None, retry_after: float, *, is_global: bool) -> None:
        """Discord answered 429: nothing more in that bucket (or at all, for a global one) until retry_after."""
        now = self._clock()
        self.stats.limited += 1
        self.invalid(now)
        if is_global or key is None:
            self._global_pause_until = max(self._global_pause_until, now + retry_after)
            return
        bucket = self._bucket(key)
        bucket.remaining = 0
        bucket.resets_at = max(bucket.resets_at, now + retry_after)

    def invalid(self, now: float | None = None) -> None:
        """Discord answered 401, 403 or 429: it counts toward the ban line."""
        self._invalid.append(self._clock() if now is None else now)

    # -- inside ----------------------------------------------------------------------------------------

    def _bucket(self, key: BucketKey) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            limit, per = self.known.get(key[0], UNKNOWN_BUCKET)
            bucket = self._buckets[key] = _Bucket(limit, per, limit, 0.0)
        return bucket

    def _forget_unstarted(self, now: float) -> None:
        while self._unstarted and now - self._unstarted[0] > STARTS_WITHIN:
            self._unstarted.popleft()

    def _wake_next(self, bucket: _Bucket) -> None:
        if bucket.waiting and not bucket.waiting[0][3].done():
            bucket.waiting[0][3].set_result(None)

    def _global_wait(self, priority: Priority, now: float) -> float:
        if now < self._global_pause_until:
            return self._global_pause_until - now
        while self._global and now - self._global[0] >= 1.0:
            self._global.popleft()
        paced = max(self._paced_until - PACE_TOLERANCE[priority] - now, 0.0)
        share = GLOBAL_SHARE[priority] * (0.5 if self._braking(now) else 1.0)
        allowed = max(1, int(self.global_per_second * share))
        if len(self._global) < allowed:
            return paced
        return max(paced, 1.0 - (now - self._global[len(self._global) - allowed]))

    def _count_global(self, now: float) -> None:
        self._global.append(now)
        self._paced_until = max(self._paced_until, now) + 1.0 / (self.global_per_second * PACE_SHARE)

    def _braking(self, now: float) -> bool:
        while self._invalid and now - self._invalid[0] >= INVALID_WINDOW:
            self._invalid.popleft()
        self.stats.invalid_recent = len(self._invalid)
        self.stats.braking = len(self._invalid) >= self.invalid_brake
        return self.stats.braking


_WEBHOOK = re.compile(r"/webhooks/(\d+)/[^/]+")
_CHANNEL = re.compile(r"/channels/(\d+)(/.*)?$")


def _api_path(path: str) -> str:
    path = path.split("/api/v", 1)[-1]
    return path[path.index("/") :] if "/" in path else path


def bucket_of(method: str, path: str) -> BucketKey | None:
    """The budget's bucket for a request to Discord's REST API (its URL path), or None for requests the budget
    does not pace (interaction answers have buckets of their own and do not count against the global limit)."""
    path = _api_path(path)
    if path.startswith("/interactions/"):
        return None
    webhook = _WEBHOOK.match(path)
    if webhook is not None:
        return ("webhook", int(webhook.group(1)))
    channel = _CHANNEL.match(path)
    if channel is None:
        return None
    rest = channel.group(2) or ""
    channel_id = int(channel.group(1))
    if rest.endswith("/threads"):
        return ("thread", channel_id)
    if rest == "/typing":
        return ("typing", channel_id)
    if rest == "/messages" and method == "POST":
        return ("create", channel_id)
    if rest.startswith("/messages/") and method in ("PATCH", "DELETE"):
        return ("edit", channel_id)
    return None


def counts_globally(path: str, application_id: int | None) -> bool:
    """Whether a request counts against Discord's global limit: a REST API request (not the gateway's, not the
    CDN's) other than an interaction answer (`/interactions/...`, or a followup through the application's own
    webhook)."""
    if "/api/v" not in path:
        return False
    path = _api_path(path)
    if path.startswith("/interactions/"):
        return False
    webhook = _WEBHOOK.match(path)
    return webhook is None or application_id is None or int(webhook.group(1)) != application_id


def started(budget: DiscordBudget, method: str, path: str, application_id: int | None) -> None:
    """A request to Discord began (the bot's HTTP trace)."""
    if counts_globally(path, application_id):
        budget.started(bucket_of(method, path))


def observe(budget: DiscordBudget, method: str, path: str, status: int, headers: Mapping[str, str]) -> None:
    """What one response from Discord teaches the budget: a bucket's real size, a 429, a refusal."""
    key = bucket_of(method, path)
    if status == 429:
        retry_after = _number(headers.get("Retry-After")) or _number(headers.get("X-RateLimit-Reset-After")) or 1.0
        scope = (headers.get("X-RateLimit-Scope") or "").lower()
        is_global = headers.get("X-RateLimit-Global", "").lower() == "true" or scope == "global"
        budget.limited(key, retry_after, is_global=is_global)
        return
    if status in (401, 403):
        budget.invalid()
    limit = _number(headers.get("X-RateLimit-Limit"))
    remaining = _number(headers.get("X-RateLimit-Remaining"))
    reset_after = _number(headers.get("X-RateLimit-Reset-After"))
    if key is not None and limit is not None and remaining is not None and reset_after is not None:
        budget.learn(key, limit=int(limit), remaining=int(remaining), reset_after=reset_after)


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None
