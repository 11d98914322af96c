"""One MCP server's connection: made when first needed, kept open by a task of its own, and after it breaks
refused for a pause (BACKOFF) before it is made again, so a dead server is not hammered.

`mcp.Client` is an anyio context manager that must be entered and left in the same task, and a transport that
fails cancels the task that entered it: so each connection is owned by a long-lived task (`_Link`) that only
enters the client and waits, while callers, in their own tasks, share the entered client.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

import httpx2
import mcp_types
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import SubscriptionLost, ToolsListChanged
from mcp.server import Server
from mcp.server.mcpserver import MCPServer
from pydantic import ValidationError

from bot.tools.config import ServerConfig

log = logging.getLogger(__name__)

BACKOFF = 10.0  # seconds a server that failed is refused before it is tried again
CONNECT_TIMEOUT = 15.0  # at most, to start a server or reach it and agree on the protocol
LIST_TTL = 300.0  # a listing is asked again after this long, even with no change announced
LIST_PAGES = 20  # a server that pages its listing forever is cut short
CLIENT_INFO = mcp_types.Implementation(name="ai-council", version="1")
_HTTP_TIMEOUT = httpx2.Timeout(30.0, read=300.0)  # the SDK's own defaults: a response stream may stay open


class ServerUnavailable(Exception):
    """A server that cannot be used now; `reason` is for people and holds no secret."""

    def __init__(self, server: str, reason: str) -> None:
        super().__init__(f"tool server {server!r} is unavailable: {reason}")
        self.server = server
        self.reason = reason


class _Link:
    """One connection, from the owning task's start to its end."""

    def __init__(self) -> None:
        self.ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
        self.ready.add_done_callback(lambda f: f.cancelled() or f.exception())  # never "never retrieved"
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None


class ServerConnection:
    """The connection to one server and its cached listing; every method is safe to call from any task."""

    def __init__(
        self, config: ServerConfig, builtin: MCPServer | Server | None = None, *, backoff: float = BACKOFF
    ) -> None:
        self.config = config
        self._builtin = builtin
        self._backoff = backoff
        self._link: _Link | None = None
        self._links: set[_Link] = set()  # every owning task not yet ended, for close()
        self._reason: str | None = None
        self._retry_at = 0.0
        self._closed = False
        self._list_lock = asyncio.Lock()
        self._listing: list[mcp_types.Tool] | None = None
        self._listed_at = 0.0
        self._generation = 0  # bumped on every change announced: a listing under way when one comes is stale
        self._refused_with: int | None = None  # the last HTTP error status while connecting

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def connect_timeout(self) -> float:
        return min(CONNECT_TIMEOUT, self.config.timeout)

    def status(self) -> str:
        if self._link is not None and self._link.ready.done() and not self._link.ready.exception():
            return "connected"
        if self._reason is not None:
            return f"unavailable: {self._reason}"
        return "connecting" if self._link is not None else "not started"

    async def connect(self) -> tuple[_Link, Client]:
        """The open connection, made now if there is none; raises ServerUnavailable while refused."""
        if self._closed:
            raise ServerUnavailable(self.name, "the tool hub is closed")
        if self._link is None:
            if time.monotonic() < self._retry_at:
                raise ServerUnavailable(self.name, self._reason or "it failed a moment ago")
            link = self._link = _Link()
            self._links.add(link)
            link.task = asyncio.create_task(self._own(link), name=f"mcp:{self.name}")
            link.task.add_done_callback(lambda _: self._links.discard(link))
        link = self._link
        try:
            # Bounded here, not only by the owner: a child that never answers is stopped in the background,
            # which takes the SDK's grace period, and nobody need wait for that.
            client = await asyncio.wait_for(asyncio.shield(link.ready), self.connect_timeout)
        except TimeoutError:
            self.fail(link, "no answer in time")
            raise ServerUnavailable(self.name, "no answer in time") from None
        return link, client

    def fail(self, link: _Link, reason: str) -> None:
        """The link broke: end it, and refuse the server for a while (once per failure, however many notice)."""
        link.stop.set()
        if link is not self._link:
            return
        self._link = None
        self._reason = reason
        self._retry_at = time.monotonic() + self._backoff
        self._listing = None
        log.warning("Tool server %s (%s) is unavailable: %s", self.name, self.config.where, reason)

    async def tools(self) -> list[mcp_types.Tool]:
        """The server's tools, listed again when it announces a change, after LIST_TTL, or on a new connection."""
        async with self._list_lock:
            fresh = time.monotonic() - self._listed_at < LIST_TTL
            if self._listing is not None and fresh and self._link is not None:
                return self._listing
            link, client = await self.connect()
            generation = self._generation
            try:
                async with asyncio.timeout(self.connect_timeout):
                    listing = await _list_all(client)
            except Exception as exc:  # whatever broke, the server cannot be used without its listing
                reason = "no listing in time" if isinstance(exc, TimeoutError) else describe(exc)
                self.fail(link, reason)
                raise ServerUnavailable(self.name, reason) from None
            if link is self._link:
                self._listing, self._listed_at = listing, time.monotonic()
                if generation != self._generation:
                    self._listed_at = 0.0  # a change came while listing: use this listing once, then ask again
            return listing

    async def close(self) -> None:
        """End every connection (a child process is stopped); the server is refused from then on."""
        self._closed = True
        self._link = None
        links = list(self._links)
        for link in links:
            link.stop.set()
        tasks = [link.task for link in links if link.task is not None]
        if tasks:
            # A stdio child is given the SDK's grace (stdin closed, then SIGTERM, then SIGKILL: a few seconds).
            _done, pending = await asyncio.wait(tasks, timeout=10)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=2)

    def reopen(self) -> None:
        """After close(): the server may be used again, from a fresh start."""
        self._closed = False
        self._reason, self._retry_at = None, 0.0

    def _changed(self) -> None:
        self._generation += 1
        self._listed_at = 0.0

    async def _own(self, link: _Link) -> None:
        try:
            async with AsyncExitStack() as stack:
                client = Client(self._target(), cache=None, client_info=CLIENT_INFO, message_handler=self._on_message)
                async with asyncio.timeout(self.connect_timeout + 1):
                    await stack.enter_async_context(client)
                if link.stop.is_set():  # closed while connecting
                    return
                self._reason = None
                self._listing = None  # a new connection may be a new version of the server
                link.ready.set_result(client)
                listener = asyncio.create_task(self._listen(link, client), name=f"mcp:{self.name}:listen")
                try:
                    await link.stop.wait()
                finally:
                    listener.cancel()
        except ServerUnavailable as exc:
            self._ended(link, exc.reason)
        except Exception as exc:
            refused = not link.ready.done() and self._refused_with is not None
            self._ended(link, f"HTTP status {self._refused_with}" if refused else describe(exc))
        else:
            self._ended(link, "closed")

    def _ended(self, link: _Link, reason: str) -> None:
        if not link.ready.done():
            link.ready.set_exception(ServerUnavailable(self.name, reason))
        if not link.stop.is_set():  # it ended by itself: it broke
            self.fail(link, "connection lost" if reason == "closed" else reason)

    async def _listen(self, link: _Link, client: Client) -> None:
        """Protocol 2026-07-28 announces changes on a subscription; it ends when the connection does."""
        try:
            async with client.listen(tools_list_changed=True) as subscription:
                async for event in subscription:
                    if isinstance(event, ToolsListChanged):
                        self._changed()
        except SubscriptionLost:
            self.fail(link, "connection lost")
        except Exception as exc:
            # Older protocols announce changes as notifications (_on_message), a server may refuse to listen,
            # and a connection being closed ends its subscription any way it can: LIST_TTL still applies.
            log.debug("Tool server %s: no change subscription (%s)", self.name, type(exc).__name__)

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, mcp_types.ToolListChangedNotification):
            self._changed()

    def _target(self) -> MCPServer | Server | AbstractAsyncContextManager[Any]:
        config = self.config
        if self._builtin is not None:
            return self._builtin
        if config.command:
            env = dict(config.env) | _from_environment(self.name, config.env_from)
            # The SDK adds only its safe defaults (PATH, HOME, …): no other variable of the bot reaches the child.
            params = StdioServerParameters(command=config.command, args=list(config.args), env=env, cwd=config.cwd)
            return stdio_client(params, errlog=sys.stderr)
        assert config.url is not None
        values = _from_environment(self.name, config.headers_from.values())
        headers = {header: values[variable] for header, variable in config.headers_from.items()}
        self._refused_with = None
        return _http(config.url, headers, self._http_answered)

    async def _http_answered(self, response: httpx2.Response) -> None:
        # The SDK turns a refusal (401, 403, 5xx) into a generic protocol error; the status says more.
        if response.status_code >= 400:
            self._refused_with = response.status_code


def describe(exc: BaseException) -> str:
    """A failure in words for people: its kind, never its message (which may quote a URL or a header)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, FileNotFoundError):
        return "command not found"
    if isinstance(exc, PermissionError):
        return "command not allowed to run"
    if isinstance(exc, httpx2.ConnectError):
        return "could not connect"
    if isinstance(exc, httpx2.HTTPStatusError):
        return f"HTTP status {exc.response.status_code}"
    if isinstance(exc, httpx2.TimeoutException | TimeoutError):
        return "no answer in time"
    if isinstance(exc, MCPError):
        return "connection lost" if exc.code == mcp_types.CONNECTION_CLOSED else f"protocol error {exc.code}"
    if isinstance(exc, ValidationError):
        return "malformed answer"
    return f"failed ({type(exc).__name__})"


def _from_environment(server: str, names: Any) -> dict[str, str]:
    missing = [name for name in names if name not in os.environ]
    if missing:
        raise ServerUnavailable(server, f"environment variable {', '.join(missing)} is not set")
    return {name: os.environ[name] for name in names}


@asynccontextmanager
async def _http(
    url: str, headers: Mapping[str, str], on_response: Callable[[httpx2.Response], Awaitable[None]]
) -> AsyncIterator[Any]:
    hooks = {"response": [on_response]}
    async with (
        httpx2.AsyncClient(headers=dict(headers), timeout=_HTTP_TIMEOUT, event_hooks=hooks) as http,
        streamable_http_client(url, http_client=http) as streams,
    ):
        yield streams


async def _list_all(client: Client) -> list[mcp_types.Tool]:
    tools: list[mcp_types.Tool] = []
    cursor: str | None = None
    for _ in range(LIST_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools
