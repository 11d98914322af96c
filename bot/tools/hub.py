"""The bot's MCP client: the tools each member may call, their specs for the providers, and calls that
never raise, whose results come back as capped text.

Connections are made when first needed and kept open (bot/tools/connection.py); a server that is down
costs a member its tools from that server, never its turn.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import anyio
import httpx2
import mcp_types
from mcp import MCPError
from mcp.server import Server
from mcp.server.mcpserver import MCPServer

from bot.providers.base import ToolSpec
from bot.tools.config import Policy, ServerConfig, ToolConfig, WhileHeld
from bot.tools.connection import BACKOFF, ServerConnection, ServerUnavailable, describe
from bot.tools.results import cap, grapheme_prefix, result_text

log = logging.getLogger(__name__)

NAME_LIMIT = 64  # both providers' limit on a tool's name
DESCRIPTION_LIMIT = 1_024
_NOT_IN_NAME = re.compile(r"[^a-zA-Z0-9_-]")
_EMPTY_SCHEMA: Mapping[str, Any] = {"type": "object", "properties": {}}

Failure = Literal["unavailable", "timeout", "error"]
# What a broken transport raises, when the SDK does not say CONNECTION_CLOSED.
_BROKEN = (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError, httpx2.TransportError, BaseExceptionGroup)


@dataclass(frozen=True, slots=True)
class ToolInfo:
    """One tool of one server: what it is, what the model calls it, and what the admin's policy says of it.

    `read_only`, `idempotent` and `destructive` are the server's own hints (MCP annotations, with MCP's
    defaults): trusted only as far as the admin trusts the server they configured.
    """

    server: str
    name: str  # the server's name for it, sent in calls
    exposed_name: str  # what the model sees and calls: ^[a-zA-Z0-9_-]{1,64}$
    title: str | None
    description: str
    input_schema: Mapping[str, Any]
    read_only: bool
    idempotent: bool
    destructive: bool
    policy: Policy
    while_held: WhileHeld = "wait"

    def spec(self) -> ToolSpec:
        """The tool as a provider is told of it."""
        schema = self.input_schema
        if not isinstance(schema, Mapping) or schema.get("type") != "object":
            schema = _EMPTY_SCHEMA  # both APIs refuse a tool whose input is not an object
        text = self.description or self.title or self.name
        return ToolSpec(self.exposed_name, grapheme_prefix(text, DESCRIPTION_LIMIT), schema)


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """What a call gave, as text within RESULT_CAP; `failed` says why there is no result (None: there is one,
    which may be the tool's own error, `is_error`). Every failure is an error for the model as well."""

    text: str
    is_error: bool
    failed: Failure | None
    duration_ms: int
    cut: bool
    chars: int


def exposed_names(server: str, tool_names: Iterable[str]) -> dict[str, str]:
    """Each tool's name as models see it: `server__tool` with other characters made "_" and cut to 64, and a
    short hash of the real name added where that made two of the server's tools alike."""
    plain = {name: _NOT_IN_NAME.sub("_", f"{server}__{name}")[:NAME_LIMIT] for name in tool_names}
    counts = Counter(plain.values())
    return {
        name: _suffixed(candidate, f"{server}__{name}")
        if counts[candidate] > 1 and candidate != f"{server}__{name}"
        else candidate
        for name, candidate in plain.items()
    }


def _suffixed(candidate: str, original: str) -> str:
    digest = hashlib.sha256(original.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{candidate[: NAME_LIMIT - len(digest) - 1]}_{digest}"


class ToolHub:
    """The configured MCP servers, and the builtin ones (in-process `MCPServer`s the bot ships)."""

    def __init__(
        self, config: ToolConfig, *, builtin: Mapping[str, MCPServer | Server] | None = None, backoff: float = BACKOFF
    ) -> None:
        builtin = dict(builtin or {})
        clash = sorted(set(builtin) & set(config.servers))
        if clash:
            raise ValueError(f"tool server name(s) {', '.join(clash)} are the bot's own; choose other names")
        self._connections: dict[str, ServerConnection] = {
            name: ServerConnection(server, backoff=backoff) for name, server in config.servers.items()
        } | {name: ServerConnection(ServerConfig(name), server, backoff=backoff) for name, server in builtin.items()}
        self._unknown_logged: set[str] = set()

    @property
    def servers(self) -> list[str]:
        return list(self._connections)

    async def start(self) -> None:
        """Ready to connect (lazily, on first use); after close(), usable again."""
        for connection in self._connections.values():
            connection.reopen()

    async def close(self) -> None:
        """Close every connection and stop every child process; safe to call twice."""
        await asyncio.gather(*(connection.close() for connection in self._connections.values()))

    def status(self) -> dict[str, str]:
        """Each server: "connected", "not started", "connecting" or "unavailable: <reason>" (no secrets)."""
        return {name: connection.status() for name, connection in self._connections.items()}

    async def tools(self, server: str) -> list[ToolInfo]:
        """The server's tools (a cached listing). Raises KeyError for a server not configured, and
        ServerUnavailable when it cannot be reached or is refused for a while after failing."""
        connection = self._connections[server]
        listing = await connection.tools()
        names = exposed_names(server, (tool.name for tool in listing))
        return [_info(connection.config, tool, names[tool.name]) for tool in listing]

    async def available(self, patterns: Sequence[str]) -> list[ToolInfo]:
        """The tools a member's list names ("server.tool" or "server.*"), each once, with names unique among
        them; a server that is down or not configured adds none (and is logged once)."""
        wanted: dict[str, set[str]] = {}
        for pattern in patterns:
            server, _, tool = pattern.partition(".")
            if server not in self._connections:
                if pattern not in self._unknown_logged:
                    self._unknown_logged.add(pattern)
                    log.warning("Tool %r names no configured tool server; it is left out", pattern)
                continue
            wanted.setdefault(server, set()).add(tool)
        listings = await asyncio.gather(*(self._listed(server) for server in wanted))
        found: list[ToolInfo] = []
        taken: set[str] = set()
        for (server, tools), listing in zip(wanted.items(), listings, strict=True):
            for info in listing:
                if "*" not in tools and info.name not in tools:
                    continue
                if info.exposed_name in taken:  # two servers' names alike (say "a_" with "b" and "a" with "_b")
                    info = replace(info, exposed_name=_suffixed(info.exposed_name, f"{server}__{info.name}"))
                taken.add(info.exposed_name)
                found.append(info)
        return found

    async def call(
        self,
        info: ToolInfo,
        arguments: Mapping[str, Any],
        *,
        meta: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> ToolOutcome:
        """Call the tool and return what it gave, or why it gave nothing. Never raises (but CancelledError).

        `meta` goes as the request's `_meta`, apart from the model's arguments: it is how a server learns who
        asks (the builtin servers read the council from it), and nothing the model writes can set it.
        """
        started = time.monotonic()

        def outcome(text: str, failed: Failure | None, is_error: bool = True) -> ToolOutcome:
            capped = cap(text)
            elapsed = round((time.monotonic() - started) * 1000)
            return ToolOutcome(capped.text, is_error, failed, elapsed, capped.cut, capped.chars)

        connection = self._connections.get(info.server)
        if connection is None:
            return outcome(f"No tool server is named {info.server!r}.", "error")
        limit = timeout if timeout is not None else connection.config.timeout
        try:
            if not any(tool.name == info.name for tool in await connection.tools()):
                return outcome(f"The tool server {info.server!r} no longer offers {info.name!r}.", "error")
            link, client = await connection.connect()
        except ServerUnavailable as exc:
            return outcome(f"The tool server {info.server!r} is unavailable ({exc.reason}).", "unavailable")
        try:
            # The SDK's own timeout cancels the request on the server; ours, a little later, bounds the rest.
            async with asyncio.timeout(limit + 1):
                result = await client.call_tool(
                    info.name, dict(arguments), read_timeout_seconds=limit, meta=dict(meta) if meta else None
                )
        except TimeoutError:
            return outcome(_late(limit), "timeout")
        except MCPError as exc:
            if exc.code == mcp_types.REQUEST_TIMEOUT:
                return outcome(_late(limit), "timeout")
            # The SDK's word for an HTTP session the server forgot (404): this connection is done for.
            session_gone = exc.code == mcp_types.INVALID_REQUEST and exc.message == "Session terminated"
            if exc.code == mcp_types.CONNECTION_CLOSED or session_gone:
                connection.fail(link, "connection lost")
                return outcome(f"The tool server {info.server!r} is unavailable (connection lost).", "unavailable")
            return outcome(f"The tool server refused the call: {exc.message}", "error")
        except Exception as exc:
            if link.stop.is_set() or isinstance(exc, _BROKEN):  # the connection ended under the call
                reason = describe(exc) if isinstance(exc, _BROKEN) else "connection lost"
                connection.fail(link, reason)
                return outcome(f"The tool server {info.server!r} is unavailable ({reason}).", "unavailable")
            # A result the SDK refuses (RuntimeError: it breaks the tool's output schema; ValidationError: it
            # breaks the protocol), or input the server kept asking for: the connection itself is sound.
            return outcome(f"The tool server gave a result that cannot be used ({type(exc).__name__}).", "error")
        return outcome(result_text(result), None, is_error=result.is_error)

    async def _listed(self, server: str) -> list[ToolInfo]:
        try:
            return await self.tools(server)
        except ServerUnavailable:
            return []  # its failure was logged when it happened


def _late(limit: float) -> str:
    return f"The tool did not answer within {limit:g} seconds; the call was abandoned."


def _info(config: ServerConfig, tool: mcp_types.Tool, exposed_name: str) -> ToolInfo:
    hints = tool.annotations or mcp_types.ToolAnnotations()
    read_only = hints.read_only_hint is True
    return ToolInfo(
        server=config.name,
        name=tool.name,
        exposed_name=exposed_name,
        title=tool.title or hints.title,
        description=tool.description or "",
        input_schema=tool.input_schema,
        read_only=read_only,
        idempotent=hints.idempotent_hint is True,
        destructive=not read_only and hints.destructive_hint is not False,  # MCP's default: destructive
        policy=config.policy_for(tool.name, read_only),
        while_held=config.while_held,
    )
