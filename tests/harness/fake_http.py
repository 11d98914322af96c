"""One route table for both ways discord.py talks to Discord's REST API.

* `bot.http` (channels, threads, webhooks management): dpytest's FakeHttp, subclassed so that the
  calls dpytest fakes loosely (send/edit/delete message, reactions, get channel) and the ones it
  lacks (threads, webhooks, command sync) all go through `request()` into the route table.
* discord.py's webhook adapter (webhook execute, interaction callbacks, followups, @original):
  it never touches `bot.http`, so `AsyncWebhookAdapter.request` is patched to the same table.

In HTTP mode neither is patched: both run discord.py's own request code (its rate limiter included)
against http_server.py, which serves the same table over loopback HTTP.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import discord
import discord.http as dhttp
import pytest
from discord.ext.test import backend as dpy_backend
from discord.webhook.async_ import AsyncWebhookAdapter

from . import errors
from .rate_limits import RateLimits, Verdict

Handler = Callable[["Request"], Awaitable[Any]]

# The bot's token as the fake Discord sees it (Discord counts the global rate limit per token).
BOT_TOKEN = "harness"


@dataclass
class Request:
    method: str
    path: str  # the route template, e.g. /channels/{channel_id}/threads
    params: dict[str, str]  # values of the template's {placeholders}
    body: Any = None  # decoded JSON body (also when sent as multipart payload_json)
    query: dict[str, Any] = field(default_factory=dict)
    files: list[discord.File] = field(default_factory=list)
    reason: str | None = None


def _template_regex(path: str) -> re.Pattern[str]:
    # Ids are snowflakes: /channels/{channel_id}/messages/{message_id} must not serve .../messages/pins.
    escaped = re.escape(path)
    pattern = re.sub(r"\\\{(\w+_id)\\\}", r"(?P<\1>[0-9]+)", escaped)
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", pattern)
    return re.compile(pattern + "$")


def _json_from_multipart(multipart: list[dict[str, Any]] | None) -> Any:
    for part in multipart or []:
        if part.get("name") == "payload_json":
            return json.loads(part["value"])
    return None


@dataclass(frozen=True)
class Match:
    template: str
    params: dict[str, str]
    handler: Handler


# discord.py tries a rate-limited request this many times before it raises the 429.
DISCORD_PY_TRIES = 5


class Router:
    """Maps (method, route template) to a handler; unknown routes fail loudly.

    With `limits` set, every request is judged by Discord's rate limits first. In-process, a 429 is waited
    out and the request tried again, as discord.py does; over HTTP the 429 is answered and discord.py
    itself reacts. `interaction(template, params)` tells interaction endpoints apart (set by the harness).
    """

    def __init__(self) -> None:
        self._routes: dict[tuple[str, str], tuple[re.Pattern[str], Handler]] = {}
        self.log: list[tuple[str, str]] = []  # every (method, url path) served, for debugging
        self.limits: RateLimits | None = None
        self.interaction: Callable[[str, dict[str, str]], bool] = lambda template, params: False
        self.cdn: Callable[[str], bytes | None] = lambda url: None  # the CDN's files by URL (set by the harness)
        self._turns: dict[tuple[str, str], asyncio.Lock] = {}  # in-process: one queue per bucket

    def add(self, method: str, path: str, handler: Handler) -> None:
        self._routes[(method, path)] = (_template_regex(path), handler)

    def match(self, method: str, url_path: str) -> Match | None:
        """The route serving a concrete path (without the /api/v10 prefix), as Discord routes it: a
        literal segment (`@original`, `@me`) wins over a placeholder."""
        best: tuple[int, Match] | None = None
        for (route_method, template), (pattern, handler) in self._routes.items():
            found = pattern.fullmatch(url_path) if route_method == method else None
            if found is None:
                continue
            params = {k: urllib.parse.unquote(v) for k, v in found.groupdict().items()}
            if best is None or len(params) < best[0]:
                best = (len(params), Match(template, params, handler))
        return best[1] if best else None

    def verdict(self, method: str, template: str, params: dict[str, str], authorization: str | None) -> Verdict | None:
        """Discord's rate limits on this request (None: no limits are modelled)."""
        if self.limits is None:
            return None
        interaction = self.interaction(template, params)
        return self.limits.check(method, template, params, authorization=authorization, interaction=interaction)

    async def serve(self, request: Request, url_path: str, handler: Handler) -> Any:
        """Run the handler; statuses Discord counts as invalid requests are told to the limits."""
        self.log.append((request.method, url_path))
        try:
            return await handler(request)
        except discord.HTTPException as error:
            if self.limits is not None:
                self.limits.answered(error.status)
            raise

    async def dispatch(
        self,
        route: dhttp.Route,
        *,
        body: Any = None,
        query: dict[str, Any] | None = None,
        files: list[discord.File] | None = None,
        reason: str | None = None,
        authorization: str | None = f"Bot {BOT_TOKEN}",
    ) -> Any:
        """Serve a request discord.py made in-process (its Route carries the template)."""
        url_path = urllib.parse.urlsplit(route.url).path
        entry = self._routes.get((route.method, route.path))
        if entry is None:
            self.log.append((route.method, url_path))
            raise NotImplementedError(f"the Discord harness has no fake for {route.method} {route.path} ({route.url})")
        pattern, handler = entry
        match = pattern.search(url_path)
        assert match is not None, (route.path, url_path)
        params = {k: urllib.parse.unquote(v) for k, v in match.groupdict().items()}
        request = Request(route.method, route.path, params, body, dict(query or {}), list(files or []), reason)
        await self._wait_turn(request, authorization)
        return await self.serve(request, url_path, handler)

    async def _wait_turn(self, request: Request, authorization: str | None) -> None:
        """In-process, a 429 is waited out and the request tried again, as discord.py does. Requests of one
        bucket queue for it in order, as discord.py's limiter (and its per-webhook lock) makes them."""
        if self.limits is None:
            return
        interaction = self.interaction(request.path, request.params)
        bucket, major = self.limits.bucket_key(request.method, request.path, request.params, interaction=interaction)
        key = (bucket.name if bucket else f"{request.method} {request.path}", major)
        async with self._turns.setdefault(key, asyncio.Lock()):
            for _ in range(DISCORD_PY_TRIES):
                verdict = self.verdict(request.method, request.path, request.params, authorization)
                if verdict is None or verdict.allowed:
                    return
                assert verdict.body is not None
                if verdict.banned:
                    raise errors.banned(verdict.body)
                await asyncio.sleep(verdict.retry_after)
            raise errors.rate_limited(verdict.retry_after)


class HarnessHttp(dpy_backend.FakeHttp):
    """dpytest's FakeHttp with the message/thread/webhook calls routed to the harness."""

    router: Router | None = None
    over_http = False  # HTTP mode: discord.py's own HTTPClient.request, to http_server.py

    # dpytest fakes these by peeking at its caller's locals, which breaks for threads and records
    # nothing; the stock HTTPClient versions build a Route and call request() instead.
    send_message = dhttp.HTTPClient.send_message
    edit_message = dhttp.HTTPClient.edit_message
    delete_message = dhttp.HTTPClient.delete_message
    add_reaction = dhttp.HTTPClient.add_reaction
    get_message = dhttp.HTTPClient.get_message
    logs_from = dhttp.HTTPClient.logs_from
    get_channel = dhttp.HTTPClient.get_channel
    send_typing = dhttp.HTTPClient.send_typing
    get_user = dhttp.HTTPClient.get_user  # dpytest's only finds cached members

    async def get_from_cdn(self, url: str) -> bytes:  # type: ignore[override]
        """Discord's CDN: the files the fake Discord holds (attachments), 404 for the rest."""
        data = self.router.cdn(url) if self.router is not None else None
        if data is None:
            raise errors.unknown("Attachment")
        return data

    async def request(  # type: ignore[override]
        self, route: dhttp.Route, *, files: Any = None, form: Any = None, **kwargs: Any
    ) -> Any:
        if self.router is None:
            return await super().request(route, files=files, form=form, **kwargs)
        if self.over_http:
            return await dhttp.HTTPClient.request(self, route, files=files, form=form, **kwargs)
        body = kwargs.get("json")
        if body is None and form:
            body = _json_from_multipart(list(form))
        return await self.router.dispatch(
            route, body=body, query=kwargs.get("params"), files=files, reason=kwargs.get("reason")
        )


def install(monkeypatch: pytest.MonkeyPatch, router: Router, *, over_http: bool = False) -> None:
    """Make dpytest build HarnessHttp, and (in-process) send the webhook adapter's calls to `router`."""

    async def adapter_request(
        self: AsyncWebhookAdapter,
        route: dhttp.Route,
        session: Any = None,
        *,
        payload: dict[str, Any] | None = None,
        multipart: list[dict[str, Any]] | None = None,
        files: Any = None,
        reason: str | None = None,
        params: dict[str, Any] | None = None,
        auth_token: str | None = None,
        **_: Any,  # proxy, proxy_auth: meaningless here
    ) -> Any:
        body = payload if payload is not None else _json_from_multipart(multipart)
        # Webhook executes carry no token: Discord counts them against the IP's global limit.
        authorization = f"Bot {auth_token}" if auth_token else None
        return await router.dispatch(
            route, body=body, query=params, files=files, reason=reason, authorization=authorization
        )

    class BoundHttp(HarnessHttp):
        pass

    BoundHttp.router = router
    BoundHttp.over_http = over_http
    monkeypatch.setattr(dpy_backend, "FakeHttp", BoundHttp)
    if not over_http:
        monkeypatch.setattr(AsyncWebhookAdapter, "request", adapter_request)
