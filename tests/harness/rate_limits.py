"""Discord's REST rate limits, as the fake Discord enforces them: asked once for every request.

What Discord documents (docs/topics/rate-limits in discord/discord-api-docs), and is modelled as written:
* Per-route buckets, told by `X-RateLimit-Limit`, `-Remaining`, `-Reset` (epoch seconds), `-Reset-After`
  (seconds) and `-Bucket` (an opaque hash shared by routes that share a limit) on every answer. A bucket
  counts separately per top-level resource ("major parameter"): the channel, the guild, or the webhook
  (id + token).
* The global limit: 50 requests per second per bot token, or per IP address for requests without one
  (webhook executes carry no token). Interaction endpoints (callbacks, followups and @original, keyed
  by the interaction token) are not bound to it.
* A 429 carries `Retry-After` (whole seconds), `X-RateLimit-Scope` (`user` for a bucket of the bot's own,
  `shared` for a resource's, `global`), `X-RateLimit-Global: true` for the global limit, the route's headers
  for a bucket, and the body {"message", "retry_after", "global", "code"}.
* Invalid requests (401, 403, and 429 except `shared` ones) count against 10,000 per 10 minutes per IP;
  past that line Discord's edge (Cloudflare) bans the IP. Its answer is a static 429 with a JSON body and
  neither rate-limit headers, `Retry-After` nor `Via` (discord/discord-api-docs#5810), so discord.py raises
  at once instead of retrying.

What Discord does not publish (it expects clients to discover it from the headers) is chosen from what is
commonly observed, and named below; see tests/README.md. Windows are fixed: a bucket's window opens with
its first request and resets `per` seconds later, as `X-RateLimit-Reset-After` counts down.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Documented by Discord.
GLOBAL_LIMIT = 50  # requests per GLOBAL_WINDOW, per bot token (or per IP without one)
GLOBAL_WINDOW = 1.0
INVALID_LIMIT = 10_000  # invalid requests (401, 403, 429) per INVALID_WINDOW, per IP
INVALID_WINDOW = 600.0
# Not published ("temporarily restricted"); an hour is what banned bots report.
BAN_SECONDS = 3600.0

RATE_LIMITED = "You are being rate limited."
RESOURCE_RATE_LIMITED = "The resource is being rate limited."
BANNED = (
    "You are being blocked from accessing our API temporarily due to exceeding our rate limits frequently. "
    "Please read our docs at https://discord.com/developers/docs/topics/rate-limits to prevent this moving forward."
)


@dataclass(frozen=True)
class Bucket:
    """One per-route limit: `limit` requests per `per` seconds, counted per major parameter."""

    name: str  # readable, for records and tests; Discord only ever shows `hash`
    limit: int
    per: float
    scope: str = "user"  # "shared": a resource's limit, whose 429s are not held against the bot

    @property
    def hash(self) -> str:
        """What `X-RateLimit-Bucket` says: opaque, stable, the same for routes sharing the bucket."""
        return hashlib.sha1(self.name.encode()).hexdigest()[:32]


# Commonly observed per-route limits (Discord publishes none of them).
# Executing a webhook, and editing or deleting its messages: 5 per 2 s per webhook (id + token).
WEBHOOK_MESSAGES = Bucket("webhook messages", 5, 2.0)
# The bot's own messages in a channel (a thread is a channel): 5 per 5 s each for create, edit and delete.
MESSAGE_CREATE = Bucket("message create", 5, 5.0)
MESSAGE_EDIT = Bucket("message edit", 5, 5.0)
MESSAGE_DELETE = Bucket("message delete", 5, 5.0)
TYPING = Bucket("typing", 5, 5.0)
REACTIONS = Bucket("reactions", 1, 0.25)  # one reaction per 250 ms
THREAD_CREATE = Bucket("thread create", 5, 5.0)  # from a message or not: one bucket
# Interaction callbacks, followups and @original share one bucket per interaction token.
INTERACTION = Bucket("interaction", 5, 2.0)
# Any other route: a bucket of its own per method and route, at this rate.
DEFAULT_LIMIT = (5, 1.0)

ROUTES: dict[tuple[str, str], Bucket] = {
    ("POST", "/webhooks/{webhook_id}/{webhook_token}"): WEBHOOK_MESSAGES,
    ("PATCH", "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"): WEBHOOK_MESSAGES,
    ("DELETE", "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"): WEBHOOK_MESSAGES,
    ("POST", "/channels/{channel_id}/messages"): MESSAGE_CREATE,
    ("PATCH", "/channels/{channel_id}/messages/{message_id}"): MESSAGE_EDIT,
    ("DELETE", "/channels/{channel_id}/messages/{message_id}"): MESSAGE_DELETE,
    ("POST", "/channels/{channel_id}/typing"): TYPING,
    ("PUT", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me"): REACTIONS,
    ("POST", "/channels/{channel_id}/threads"): THREAD_CREATE,
    ("POST", "/channels/{channel_id}/messages/{message_id}/threads"): THREAD_CREATE,
}

# Only the webhook bucket: what the webhook-spread figure of the benchmark measures.
WEBHOOK_ROUTES_ONLY = {key: bucket for key, bucket in ROUTES.items() if bucket is WEBHOOK_MESSAGES}


@dataclass(frozen=True)
class Verdict:
    """The model's answer to one request: go ahead (with these headers), or a 429."""

    allowed: bool
    headers: dict[str, str]
    body: dict[str, Any] | None = None  # the 429's JSON body
    retry_after: float = 0.0
    scope: str | None = None  # of a 429: "user", "shared", "global", or "ban" (Discord's edge)

    @property
    def banned(self) -> bool:
        """Cloudflare's answer: no `Via` header, so discord.py raises instead of waiting."""
        return self.scope == "ban"


@dataclass(frozen=True, slots=True)
class Seen:
    """One request as the model judged it."""

    at: float  # the model's clock
    method: str
    route: str  # the route template
    bucket: str  # Bucket.name
    major: str  # the major parameter ("" for none)
    limited: bool  # answered 429 by the model
    scope: str | None  # of the 429
    is_global: bool  # the global limit (or the ban) refused it
    global_key: str | None  # whose global budget it counts against (None: an interaction endpoint)


@dataclass
class _Window:
    started: float
    used: int = 0


@dataclass
class RateLimits:
    """Discord's limits for one fake Discord. Ask `check()` before serving a request, tell `answered()`
    what a served request was answered with (401/403/429 count as invalid requests).

    `clock` defaults to the running loop's time, which discord.py's own limiter also uses; tests pass a
    clock they drive. `time_scale` shrinks every window (0.1: Discord at ten times the speed) so a test
    can watch many windows go by in a second. `routes` replaces the table of buckets (e.g.
    `WEBHOOK_ROUTES_ONLY`); `default=None` leaves routes not in it unlimited and without headers;
    `global_limit=None` turns the global limit off.
    """

    clock: Callable[[], float] | None = None
    epoch: Callable[[], float] = time.time
    routes: Mapping[tuple[str, str], Bucket] = field(default_factory=lambda: dict(ROUTES))
    default: tuple[int, float] | None = DEFAULT_LIMIT
    global_limit: int | None = GLOBAL_LIMIT
    global_window: float = GLOBAL_WINDOW
    invalid_limit: int = INVALID_LIMIT
    invalid_window: float = INVALID_WINDOW
    ban_seconds: float = BAN_SECONDS
    time_scale: float = 1.0
    requests: list[Seen] = field(default_factory=list)  # every request judged, in order
    bans: int = 0  # times the invalid-request line was crossed
    banned_until: float = -math.inf
    banned_answers: int = 0  # requests refused by the ban

    def __post_init__(self) -> None:
        self._buckets: dict[tuple[str, str], _Window] = {}
        self._globals: dict[str, _Window] = {}
        self._invalid: deque[float] = deque()

    # -- asking --------------------------------------------------------------------------------------

    def now(self) -> float:
        return self.clock() if self.clock is not None else asyncio.get_running_loop().time()

    def check(
        self,
        method: str,
        route: str,
        params: Mapping[str, str],
        *,
        authorization: str | None,
        interaction: bool = False,
    ) -> Verdict:
        """Judge one request to `route` (a template such as /channels/{channel_id}/messages) with the
        values of its placeholders. `authorization` is the request's Authorization header (None: the
        global limit is the IP's); `interaction`: an interaction endpoint (callback, followup, @original)."""
        now = self.now()
        bucket, major = self.bucket_key(method, route, params, interaction=interaction)
        global_key = None if interaction else (authorization or "ip")

        def seen(limited: bool, scope: str | None = None) -> None:
            name = bucket.name if bucket else f"{method} {route}"
            is_global = scope in ("global", "ban")
            self.requests.append(Seen(now, method, route, name, major, limited, scope, is_global, global_key))

        if now < self.banned_until:
            self.banned_answers += 1
            seen(True, "ban")
            body = {"code": 0, "message": BANNED}
            return Verdict(False, {}, body, self.banned_until - now, "ban")
        if global_key is not None and self.global_limit is not None:
            window = self._window(self._globals, global_key, self.global_window, now)
            if window.used >= self.global_limit:
                retry_after = _ceil_ms(window.started + self.global_window * self.time_scale - now)
                self._invalid_request(now)
                seen(True, "global")
                headers = {
                    "Retry-After": str(math.ceil(retry_after)),
                    "X-RateLimit-Global": "true",
                    "X-RateLimit-Scope": "global",
                }
                body = {"message": RATE_LIMITED, "retry_after": retry_after, "global": True, "code": 0}
                return Verdict(False, headers, body, retry_after, "global")
            window.used += 1
        if bucket is None:
            seen(False)
            return Verdict(True, {})
        window = self._window(self._buckets, (bucket.name, major), bucket.per, now)
        reset_after = _ceil_ms(window.started + bucket.per * self.time_scale - now)
        if window.used >= bucket.limit:
            if bucket.scope != "shared":
                self._invalid_request(now)
            seen(True, bucket.scope)
            headers = {
                **self._route_headers(bucket, 0, reset_after),
                "Retry-After": str(math.ceil(reset_after)),
                "X-RateLimit-Scope": bucket.scope,
            }
            message = RESOURCE_RATE_LIMITED if bucket.scope == "shared" else RATE_LIMITED
            body = {"message": message, "retry_after": reset_after, "global": False, "code": 0}
            return Verdict(False, headers, body, reset_after, bucket.scope)
        window.used += 1
        seen(False)
        return Verdict(True, self._route_headers(bucket, bucket.limit - window.used, reset_after))

    def answered(self, status: int, *, scope: str | None = None) -> None:
        """A served request was answered with `status`: 401, 403 and 429 (unless `shared`) are invalid."""
        if status in (401, 403) or (status == 429 and scope != "shared"):
            self._invalid_request(self.now())

    def bucket_key(
        self, method: str, route: str, params: Mapping[str, str], *, interaction: bool = False
    ) -> tuple[Bucket | None, str]:
        """The bucket a request spends, and the major parameter it is counted under."""
        if interaction:
            return INTERACTION, params.get("webhook_token", "")
        return self.bucket_for(method, route), major_parameter(params)

    def bucket_for(self, method: str, route: str) -> Bucket | None:
        bucket = self.routes.get((method, route))
        if bucket is None and self.default is not None:
            limit, per = self.default
            bucket = Bucket(f"{method} {route}", limit, per)
        return bucket

    # -- reading what happened -----------------------------------------------------------------------

    @property
    def rate_limited(self) -> list[Seen]:
        """Every request the model answered with a 429 (the ban's included)."""
        return [seen for seen in self.requests if seen.limited]

    def count_429s(self, scope: str | None = None) -> int:
        return sum(seen.limited and (scope is None or seen.scope == scope) for seen in self.requests)

    @property
    def invalid_requests(self) -> int:
        """Invalid requests in the sliding window that ends now."""
        self._forget_invalid(self.now())
        return len(self._invalid)

    def usage(self) -> Counter[str]:
        """Requests let through, per bucket name."""
        return Counter(seen.bucket for seen in self.requests if not seen.limited)

    def requests_per_second(
        self, since: float | None = None, until: float | None = None, *, global_key: str | None = "any"
    ) -> float:
        """Requests let through per second between `since` and `until` (default: the first and the last
        request judged). `global_key` narrows to one global budget (None: interaction endpoints)."""
        served = [
            seen.at
            for seen in self.requests
            if not seen.limited and (global_key == "any" or seen.global_key == global_key)
        ]
        if not served:
            return 0.0
        start = served[0] if since is None else since
        end = served[-1] if until is None else until
        inside = sum(start <= at <= end for at in served)
        return inside / (end - start) if end > start else float(inside)

    # -- internals -----------------------------------------------------------------------------------

    def _window(self, windows: dict[Any, _Window], key: Any, per: float, now: float) -> _Window:
        window = windows.get(key)
        if window is None or now >= window.started + per * self.time_scale:
            window = windows[key] = _Window(now)
        return window

    def _route_headers(self, bucket: Bucket, remaining: int, reset_after: float) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(bucket.limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": f"{self.epoch() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": bucket.hash,
        }

    def _invalid_request(self, now: float) -> None:
        self._forget_invalid(now)
        self._invalid.append(now)
        if len(self._invalid) >= self.invalid_limit:
            self.bans += 1
            self.banned_until = now + self.ban_seconds * self.time_scale
            self._invalid.clear()

    def _forget_invalid(self, now: float) -> None:
        horizon = now - self.invalid_window * self.time_scale
        while self._invalid and self._invalid[0] <= horizon:
            self._invalid.popleft()


def major_parameter(params: Mapping[str, str]) -> str:
    """The top-level resource a route's bucket is counted per: channel, guild, or webhook (id + token)."""
    for name in ("channel_id", "guild_id"):
        if name in params:
            return f"{name}={params[name]}"
    if "webhook_id" in params:
        token = params.get("webhook_token")
        return f"webhook_id={params['webhook_id']}" + (f"+{token}" if token else "")
    return ""


def _ceil_ms(seconds: float) -> float:
    """Round up to the millisecond, so a client that waits exactly this long is never early."""
    return max(0.0, math.ceil(round(seconds * 1000, 6)) / 1000)


__all__ = [
    "BAN_SECONDS",
    "DEFAULT_LIMIT",
    "GLOBAL_LIMIT",
    "INTERACTION",
    "INVALID_LIMIT",
    "ROUTES",
    "WEBHOOK_MESSAGES",
    "WEBHOOK_ROUTES_ONLY",
    "Bucket",
    "RateLimits",
    "Seen",
    "Verdict",
    "major_parameter",
]
