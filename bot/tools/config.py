"""Which MCP tool servers the bot may reach, read from a TOML file (tools.toml) and checked at start-up.

A server runs as a child process spoken to over stdio (`command`, `args`), or answers streamable HTTP at
`url`. Secrets never live in the file's reprs or in any message: a child's `env` values are shown by name
only, and HTTP headers are read from environment variables (`headers_from`) when connecting.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast
from urllib.parse import urlsplit

from bot.catalog import endpoint_host

Policy = Literal["allow", "notify", "hold"]
POLICIES: tuple[Policy, ...] = ("allow", "notify", "hold")
# What a member does about a held call: wait for the moderators' decision (the council waits), or answer without
# it at once (the call runs later if they approve it, and its result shows in the thread).
WhileHeld = Literal["wait", "go_on"]
WHILE_HELD: tuple[WhileHeld, ...] = ("wait", "go_on")
DEFAULT_TIMEOUT = 30.0
SERVER_NAME = re.compile(r"^[a-z0-9_-]{1,24}$")
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP token
_LOOPBACK_NAMES = ("localhost",)
_STDIO_FIELDS = {"command", "args", "env", "env_from", "cwd"}
_HTTP_FIELDS = {"url", "headers_from"}
_FIELDS = _STDIO_FIELDS | _HTTP_FIELDS | {"timeout", "policy", "while_held"}


class ToolConfigError(Exception):
    """The tool servers file cannot be used; the message names the file, server and field, never a secret."""


@dataclass(frozen=True, slots=True, repr=False)
class ServerConfig:
    """One MCP server as the admin configured it (or a builtin one, with neither command nor url)."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)  # literal values for the child: may be secrets
    env_from: tuple[str, ...] = ()  # variables copied from the bot's environment when the child starts
    cwd: Path | None = None
    url: str | None = None
    headers_from: Mapping[str, str] = field(default_factory=dict)  # header name -> variable holding its value
    timeout: float = DEFAULT_TIMEOUT
    policy: Mapping[str, Policy] = field(default_factory=dict)  # tool name (or "*") -> policy
    while_held: WhileHeld = "wait"

    @property
    def transport(self) -> Literal["stdio", "http", "builtin"]:
        return "stdio" if self.command else "http" if self.url else "builtin"

    @property
    def where(self) -> str:
        """Where the server is, for people: the command or the URL's host, nothing that could hold a key."""
        if self.command:
            return f"stdio: {Path(self.command).name}"
        return f"http: {endpoint_host(self.url)}" if self.url else "builtin"

    def policy_for(self, tool_name: str, read_only: bool) -> Policy:
        """The admin's word on this tool, else on the server's other tools, else: read-only tools run, others wait."""
        named = self.policy.get(tool_name) or self.policy.get("*")
        if named:
            return named
        return "allow" if read_only else "hold"

    def __repr__(self) -> str:
        return (
            f"ServerConfig(name={self.name!r}, where={self.where!r}, env={sorted(self.env)!r}, "
            f"env_from={list(self.env_from)!r}, headers_from={dict(self.headers_from)!r}, "
            f"timeout={self.timeout!r}, policy={dict(self.policy)!r})"
        )

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class ToolConfig:
    """Every configured MCP server, by name."""

    servers: dict[str, ServerConfig] = field(default_factory=dict)


def load_tool_config(path: Path) -> ToolConfig:
    """The servers in `path`; a missing file configures none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ToolConfig()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ToolConfigError(f"Tool servers file {path} is not valid TOML: {exc}") from None
    return parse_tool_config(data, source=str(path), base=path.parent)


def parse_tool_config(data: Mapping[str, object], *, source: str, base: Path) -> ToolConfig:
    unknown = sorted(set(data) - {"server"})
    if unknown:
        raise ToolConfigError(
            f"{source}: unknown top-level key(s): {', '.join(unknown)} (servers go in [server.NAME])."
        )
    servers = data.get("server", {})
    if not isinstance(servers, dict):
        raise ToolConfigError(f"{source}: `server` must be tables like [server.search].")
    return ToolConfig({name: _parse_server(name, entry, source, base) for name, entry in servers.items()})


def _parse_server(name: str, entry: object, source: str, base: Path) -> ServerConfig:
    where = f"{source}: server {name!r}"
    if not SERVER_NAME.match(name):
        raise ToolConfigError(f"{where}: a server's name is 1-24 lowercase letters, digits, '_' or '-'.")
    if not isinstance(entry, dict):
        raise ToolConfigError(f"{where} must be a table.")
    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise ToolConfigError(f"{where} has unknown field(s): {', '.join(unknown)}.")
    if ("command" in entry) == ("url" in entry):
        raise ToolConfigError(f"{where} needs either `command` (a program spoken to over stdio) or `url`, not both.")
    while_held = entry.get("while_held", "wait")
    if while_held not in WHILE_HELD:
        raise ToolConfigError(f'{where}: `while_held` must be "wait" (the council waits) or "go_on".')
    common = {
        "name": name,
        "timeout": _timeout(entry, where),
        "policy": _policy(entry, where),
        "while_held": cast(WhileHeld, while_held),
    }
    if "url" in entry:
        stray = sorted(set(entry) & _STDIO_FIELDS)
        if stray:
            raise ToolConfigError(f"{where}: {', '.join(stray)} only apply to a `command` server, not a `url` one.")
        return ServerConfig(url=_url(entry["url"], where), headers_from=_headers(entry, where), **common)
    stray = sorted(set(entry) & _HTTP_FIELDS)
    if stray:
        raise ToolConfigError(f"{where}: {', '.join(stray)} only apply to a `url` server, not a `command` one.")
    command = entry["command"]
    if not isinstance(command, str) or not command.strip():
        raise ToolConfigError(f"{where}: `command` must be a non-empty string.")
    args = entry.get("args", [])
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        raise ToolConfigError(f"{where}: `args` must be a list of strings.")
    cwd = entry.get("cwd")
    if cwd is not None and (not isinstance(cwd, str) or not cwd.strip()):
        raise ToolConfigError(f"{where}: `cwd` must be a directory path (relative paths start at the file's folder).")
    return ServerConfig(
        command=command.strip(),
        args=tuple(args),
        env=_env(entry, where),
        env_from=_env_from(entry, where),
        cwd=base / cwd if cwd else None,
        **common,
    )


def _timeout(entry: dict[str, object], where: str) -> float:
    value = entry.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value <= 300:
        raise ToolConfigError(f"{where}: `timeout` must be a number of seconds from 1 to 300.")
    return float(value)


def _policy(entry: dict[str, object], where: str) -> dict[str, Policy]:
    table = entry.get("policy", {})
    if not isinstance(table, dict):
        raise ToolConfigError(f'{where}: `policy` must be a table like [server.NAME.policy] with "*" = "notify".')
    for tool, value in table.items():
        if value not in POLICIES:
            raise ToolConfigError(f"{where}: the policy for {tool!r} must be one of {', '.join(POLICIES)}.")
    return cast(dict[str, Policy], dict(table))


def _env(entry: dict[str, object], where: str) -> dict[str, str]:
    table = entry.get("env", {})
    if not isinstance(table, dict):
        raise ToolConfigError(f'{where}: `env` must be a table like {{ NAME = "value" }}.')
    for key, value in table.items():
        # The value may be a secret: the message names the variable only.
        if not _VARIABLE.match(key) or not isinstance(value, str):
            raise ToolConfigError(f"{where}: env variable {key!r} needs a name like API_URL and a string value.")
    return dict(table)


def _env_from(entry: dict[str, object], where: str) -> tuple[str, ...]:
    names = entry.get("env_from", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and _VARIABLE.match(n) for n in names):
        raise ToolConfigError(f'{where}: `env_from` must be a list of variable names like ["SEARCH_API_KEY"].')
    return tuple(dict.fromkeys(names))


def _headers(entry: dict[str, object], where: str) -> dict[str, str]:
    table = entry.get("headers_from", {})
    if not isinstance(table, dict):
        raise ToolConfigError(f'{where}: `headers_from` must be a table like {{ Authorization = "SEARCH_TOKEN" }}.')
    for header, variable in table.items():
        if not _HEADER.match(header):
            raise ToolConfigError(f"{where}: {header!r} is not an HTTP header name.")
        if not isinstance(variable, str) or not _VARIABLE.match(variable):
            raise ToolConfigError(
                f"{where}: header {header!r} must name the environment variable holding its value, "
                'like { Authorization = "SEARCH_TOKEN" }; the value itself never goes in this file.'
            )
    return dict(table)


def _url(value: object, where: str) -> str:
    # The URL itself is never echoed: its path or query could hold a token.
    if not isinstance(value, str):
        raise ToolConfigError(f"{where}: `url` must be a string.")
    parts = urlsplit(value.strip())
    try:
        host, _port = parts.hostname, parts.port
    except ValueError:
        host = None
    if not host or parts.scheme not in ("http", "https"):
        raise ToolConfigError(f"{where}: `url` must be an https URL with a host, like https://example.com/mcp.")
    if parts.username is not None or parts.password is not None:
        raise ToolConfigError(f"{where}: `url` may not hold credentials; put them in `headers_from`.")
    if parts.scheme == "http" and not _is_loopback(host):
        raise ToolConfigError(f"{where}: `url` must use https (plain http only for 127.0.0.1 or localhost).")
    return value.strip()


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
