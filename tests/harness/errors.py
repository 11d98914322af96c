"""Exceptions: Discord's HTTP errors as the fakes raise them, and the harness's own test failures."""

from __future__ import annotations

from typing import Any

import aiohttp
import discord
from discord.ext.test.backend import FakeRequest


def http_error(status: int, code: int, message: str, errors: dict[str, Any] | None = None) -> discord.HTTPException:
    """The exception discord.py would raise for this Discord JSON error body.

    Raised straight from a fake route, it reaches the bot exactly where a real 4xx would.
    """
    body: dict[str, Any] = {"code": code, "message": message}
    if errors:
        body["errors"] = errors
    return _from_body(status, body)


def _from_body(status: int, body: dict[str, Any]) -> discord.HTTPException:
    reason = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 429: "Too Many Requests"}.get(status, "Error")
    response = FakeRequest(status, reason)
    error: discord.HTTPException
    if status == 403:
        error = discord.Forbidden(response, body)  # type: ignore[arg-type]
    elif status == 404:
        error = discord.NotFound(response, body)  # type: ignore[arg-type]
    else:
        error = discord.HTTPException(response, body)  # type: ignore[arg-type]
    error.discord_body = body  # type: ignore[attr-defined]  # what the fake Discord answers over HTTP
    return error


def discord_body(error: discord.HTTPException) -> dict[str, Any]:
    """The JSON body Discord would have answered with to raise `error`."""
    body = getattr(error, "discord_body", None)
    return body if body is not None else {"code": error.code, "message": error.text}


def server_error() -> discord.DiscordServerError:
    """A 502 from Discord's edge, as discord.py raises it once its own retries are spent."""
    return discord.DiscordServerError(FakeRequest(502, "Bad Gateway"), "502 Bad Gateway")  # type: ignore[arg-type]


def rate_limited(retry_after: float = 1.0) -> discord.HTTPException:
    """A 429 as discord.py raises it once its own retries are spent (over HTTP: one 429 answer, which
    discord.py waits out and retries)."""
    return _from_body(
        429, {"message": "You are being rate limited.", "retry_after": retry_after, "global": False, "code": 0}
    )


def banned(body: dict[str, Any]) -> discord.HTTPException:
    """Discord's edge refusing a banned IP: discord.py raises this 429 at once, without retrying."""
    return _from_body(429, body)


def connection_reset() -> Exception:
    """The connection dropped (aiohttp's error, not a discord.HTTPException): the outcome is unknown."""
    return aiohttp.ServerDisconnectedError("Server disconnected")


def fault(kind: str) -> Exception:
    """The error a fault kind stands for: "before"/"after" a 502, "reset" a dropped connection, "429" a rate
    limit, "refuse" a 400 Invalid Form Body, "forbid" a 403 Missing Permissions."""
    if kind in ("before", "after"):
        return server_error()
    if kind in ("reset", "reset-after"):
        return connection_reset()
    if kind == "429":
        return rate_limited()
    if kind == "refuse":
        return form_error(["content"], "BASE_TYPE_BAD_REQUEST", "Discord refused this content")
    if kind == "forbid":
        return missing_permissions()
    raise ValueError(f"unknown fault {kind!r}")


def form_error(path: list[str | int], code: str, message: str) -> discord.HTTPException:
    """400 / 50035 Invalid Form Body with Discord's nested `errors` shape at `path`."""
    node: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for key in reversed(path):
        node = {str(key): node}
    return http_error(400, 50035, "Invalid Form Body", node)


def missing_permissions() -> discord.HTTPException:
    return http_error(403, 50013, "Missing Permissions")


def missing_access() -> discord.HTTPException:
    """What Discord answers about a channel or thread the bot cannot see."""
    return http_error(403, 50001, "Missing Access")


def unknown(kind: str) -> discord.HTTPException:
    codes = {
        "Channel": 10003,
        "Member": 10007,
        "Message": 10008,
        "Webhook": 10015,
        "interaction": 10062,
        "Attachment": 0,  # the CDN's plain 404, no JSON error code
    }
    return http_error(404, codes[kind], f"Unknown {kind}")


class HarnessError(AssertionError):
    """A test failure detected by the harness (an AssertionError so pytest reports it as one)."""


class UnhandledBotError(HarnessError):
    """discord.py logged an exception (command, view, listener) or a bot task died with one."""


class NoResponseError(HarnessError):
    """An interaction was never acknowledged: the user would see "The application did not respond"."""


class InvalidInvocation(HarnessError):
    """The Discord client would not let a user send this (unknown option, value out of range, ...)."""


class SettleTimeout(HarnessError):
    """Tasks started by a dispatch were still running when the harness stopped waiting."""
