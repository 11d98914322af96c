"""Turning transport failures and HTTP error bodies into short, key-free ProviderErrors (plus small parsing helpers).

Both clients share this so that "DeepSeek: rate limited (HTTP 429, retry after 2s): ..." reads the same
whichever wire format the provider speaks, and so the redaction of API keys lives in exactly one place.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from bot.providers.base import ProviderError

# Provider error texts end up in Discord messages and logs; a long HTML error page would drown the useful part.
_MAX_DETAIL_CHARS = 200

_STATUS_LABELS: dict[int, str] = {
    400: "bad request",
    413: "request too large",
    500: "server error",
    502: "bad gateway",
    503: "service unavailable",
    504: "gateway timeout",
    529: "overloaded",
}


def redact(text: str, api_key: str | None) -> str:
    """Remove the key from text we did not write ourselves (some providers echo the key they were sent)."""
    if api_key:
        text = text.replace(api_key, "[redacted]")
    return text


def short_detail(text: str, api_key: str | None) -> str:
    """Collapse whitespace, redact, and cut to a length that fits in a chat message."""
    text = " ".join(redact(text, api_key).split())
    if len(text) > _MAX_DETAIL_CHARS:
        text = text[: _MAX_DETAIL_CHARS - 1] + "…"
    return text


def error_message_from_body(body: str) -> str | None:
    """The provider's own explanation, if the body is JSON shaped like either API's errors.

    Anthropic and OpenAI-style APIs use {"error": {"message": ...}}; Ollama's native errors are {"error": "..."}.
    Non-JSON bodies (proxy HTML pages) are ignored rather than quoted.
    """
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    for candidate in (error.get("message") if isinstance(error, dict) else None, error, data.get("message")):
        if isinstance(candidate, str) and candidate:
            return candidate
    return None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait, from a Retry-After header in either of its two RFC 9110 forms."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds)


def http_error(provider: str, status: int, body: str, headers: Mapping[str, str], api_key: str | None) -> ProviderError:
    """Map a non-2xx response to the kind a retry layer can act on."""
    retry_after = parse_retry_after(headers.get("retry-after"))
    return status_error(provider, status, error_message_from_body(body), api_key, retry_after=retry_after)


def status_error(
    provider: str, status: int, detail: str | None, api_key: str | None, *, retry_after: float | None = None
) -> ProviderError:
    """The error for an HTTP status (or an in-stream error standing for one), with the provider's explanation."""
    suffix = f": {short_detail(detail, api_key)}" if detail else ""
    if status == 429:
        wait = f", retry after {retry_after:g}s" if retry_after is not None else ""
        return ProviderError(
            "rate_limited",
            f"{provider}: rate limited (HTTP 429{wait}){suffix}",
            status=status,
            retry_after=retry_after,
            provider=provider,
        )
    if status in (401, 403):
        return ProviderError(
            "auth", f"{provider}: authentication failed (HTTP {status}){suffix}", status=status, provider=provider
        )
    if status == 404:
        return ProviderError("not_found", f"{provider}: not found (HTTP 404){suffix}", status=status, provider=provider)
    label = _STATUS_LABELS.get(status, "error")
    return ProviderError("http", f"{provider}: {label} (HTTP {status}){suffix}", status=status, provider=provider)


def malformed(provider: str, why: str) -> ProviderError:
    return ProviderError("malformed", f"{provider}: malformed response ({why})", provider=provider)


def empty(provider: str) -> ProviderError:
    return ProviderError("empty", f"{provider}: empty reply", provider=provider)


def cut(provider: str) -> ProviderError:
    return ProviderError("cut", f"{provider}: reply cut off before the end", provider=provider)


def json_object(provider: str, text: str) -> dict[str, Any]:
    """Parse a body or SSE payload that must be a JSON object."""
    try:
        data = json.loads(text)
    except ValueError:
        raise malformed(provider, "invalid JSON") from None
    if not isinstance(data, dict):
        raise malformed(provider, "expected a JSON object")
    return data


def as_dict(value: object) -> dict[str, Any]:
    """Nested JSON objects we only read from; anything else reads as empty instead of raising AttributeError."""
    return value if isinstance(value, dict) else {}


def token_count(value: object, default: int = 0) -> int:
    """Token counts; absent or odd values count as the default rather than failing an otherwise good reply."""
    return value if isinstance(value, int) and not isinstance(value, bool) else default


@asynccontextmanager
async def transport_errors(provider: str, timeout: float, api_key: str | None) -> AsyncIterator[None]:
    """Translate aiohttp/asyncio failures raised inside the block; ProviderErrors pass through untouched."""
    try:
        yield
    except ProviderError:
        raise
    # Must come before ClientConnectionError: aiohttp's ServerTimeoutError is both a TimeoutError and one of those.
    except TimeoutError as exc:
        raise ProviderError("timeout", f"{provider}: no reply within {timeout:g}s", provider=provider) from exc
    # The connection died mid-body (chunked encoding or content-length not completed): the reply is truncated.
    except aiohttp.ClientPayloadError as exc:
        raise cut(provider) from exc
    except aiohttp.ClientError as exc:
        reason = short_detail(str(exc) or type(exc).__name__, api_key)
        raise ProviderError("connection", f"{provider}: connection failed ({reason})", provider=provider) from exc
