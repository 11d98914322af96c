"""One route table for both ways discord.py talks to Discord's REST API.

* `bot.http` (channels, threads, webhooks management): dpytest's FakeHttp, subclassed so that the
  calls dpytest fakes loosely (send/edit/delete message, reactions, get channel) and the ones it
  lacks (threads, webhooks, command sync) all go through `request()` into the route table.
* discord.py's webhook adapter (webhook execute, interaction callbacks, followups, @original):
  it never touches `bot.http`, so `AsyncWebhookAdapter.request` is patched to the same table.
"""

from __future__ import annotations

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

Handler = Callable[["Request"], Awaitable[Any]]


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
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path))
    return re.compile(pattern + "$")


def _json_from_multipart(multipart: list[dict[str, Any]] | None) -> Any:
    for part in multipart or []:
        if part.get("name") == "payload_json":
            return json.loads(part["value"])
    return None


class Router:
    """Maps (method, route template) to a handler; unknown routes fail loudly."""

    def __init__(self) -> None:
        self._routes: dict[tuple[str, str], tuple[re.Pattern[str], Handler]] = {}
        self.log: list[tuple[str, str]] = []  # every (method, url path) served, for debugging

    def add(self, method: str, path: str, handler: Handler) -> None:
        self._routes[(method, path)] = (_template_regex(path), handler)

    async def dispatch(
        self,
        route: dhttp.Route,
        *,
        body: Any = None,
        query: dict[str, Any] | None = None,
        files: list[discord.File] | None = None,
        reason: str | None = None,
    ) -> Any:
        url_path = urllib.parse.urlsplit(route.url).path
        self.log.append((route.method, url_path))
        entry = self._routes.get((route.method, route.path))
        if entry is None:
            raise NotImplementedError(f"the Discord harness has no fake for {route.method} {route.path} ({route.url})")
        pattern, handler = entry
        match = pattern.search(url_path)
        assert match is not None, (route.path, url_path)
        params = {k: urllib.parse.unquote(v) for k, v in match.groupdict().items()}
        request = Request(route.method, route.path, params, body, dict(query or {}), list(files or []), reason)
        return await handler(request)


class HarnessHttp(dpy_backend.FakeHttp):
    """dpytest's FakeHttp with the message/thread/webhook calls routed to the harness."""

    router: Router | None = None

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

    async def request(  # type: ignore[override]
        self, route: dhttp.Route, *, files: Any = None, form: Any = None, **kwargs: Any
    ) -> Any:
        if self.router is None:
            return await super().request(route, files=files, form=form, **kwargs)
        body = kwargs.get("json")
        if body is None and form:
            body = _json_from_multipart(list(form))
        return await self.router.dispatch(
            route, body=body, query=kwargs.get("params"), files=files, reason=kwargs.get("reason")
        )


def install(monkeypatch: pytest.MonkeyPatch, router: Router) -> None:
    """Make dpytest build HarnessHttp, and send the webhook adapter's calls to `router`."""

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
        **_: Any,  # proxy, proxy_auth, auth_token: meaningless here
    ) -> Any:
        body = payload if payload is not None else _json_from_multipart(multipart)
        return await router.dispatch(route, body=body, query=params, files=files, reason=reason)

    class BoundHttp(HarnessHttp):
        pass

    BoundHttp.router = router
    monkeypatch.setattr(dpy_backend, "FakeHttp", BoundHttp)
    monkeypatch.setattr(AsyncWebhookAdapter, "request", adapter_request)
