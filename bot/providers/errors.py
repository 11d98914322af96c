"""Turning transport failures and HTTP error bodies into short, key-free ProviderErrors (plus small parsing helpers).

Both clients share this so that "DeepSeek: rate limited (HTTP 429, retry after 2s): ..." reads the same
whichever wire format the provider speaks, and so the redaction of API keys lives in exactly one place.
"""

from __future__ import annotations

import json
import re
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
    402: "payment required",
    408: "request timeout",
    409: "conflict",
    413: "request too large",
    500: "server error",
    502: "bad gateway",
    503: "service unavailable",
    504: "gateway timeout",
    529: "overloaded",
}


# A 429 (or 400/402/403) that means the budget is spent, not that we asked too fast: retrying cannot help.
# OpenAI says code "insufficient_quota", Anthropic "Your credit balance is too low", DeepSeek 402 "Insufficient Balance".
_QUOTA_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached", "billing_not_active"})
_RATE_LIMIT_CODES = frozenset({"rate_limit_exceeded"})  # OpenAI's; Anthropic types every 429 rate_limit_error
_URL = re.compile(r"https?://\S+")
_QUOTA_TEXT = re.compile(
    r"exceeded your current quota|insufficient[ _]quota|insufficient balance|credit balance is too low|billing"
    r"|spending limit|out of credits",
    re.IGNORECASE,
)


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


def error_code_from_body(body: str) -> str | None:
    """The machine-readable code of an OpenAI-style error ({"error": {"code": ..., "type": ...}}), if any."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return None
    for candidate in (error.get("code"), error.get("type")):
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
    # OpenAI also sends retry-after-ms, more precise than the whole seconds of retry-after.
    retry_after_ms = parse_retry_after(headers.get("retry-after-ms"))
    retry_after = retry_after_ms / 1000 if retry_after_ms is not None else parse_retry_after(headers.get("retry-after"))
    error = status_error(
        provider,
        status,
        error_message_from_body(body),
        api_key,
        retry_after=retry_after,
        code=error_code_from_body(body),
    )
    # Both APIs may say outright whether a retry can help; the official SDKs obey "true" and "false" only.
    should_retry = {"true": True, "false": False}.get(headers.get("x-should-retry", "").strip().lower())
    if should_retry is not None:
        error.should_retry = should_retry
    return error


def is_quota_error(status: int, detail: str | None, code: str | None) -> bool:
    """Whether an error says the account's budget or credit is spent (as opposed to "too fast, try again")."""
    if status not in (400, 402, 403, 429):
        return False
    code = code.lower() if code else None
    if status == 402 or code in _QUOTA_CODES:
        return True
    if code in _RATE_LIMIT_CODES or detail is None:
        return False
    # Rate-limit texts link to ".../account/billing"; only the words count, not the addresses.
    return _QUOTA_TEXT.search(_URL.sub("", detail)) is not None


def status_error(
    provider: str,
    status: int,
    detail: str | None,
    api_key: str | None,
    *,
    retry_after: float | None = None,
    code: str | None = None,
) -> ProviderError:
    """The error for an HTTP status (or an in-stream error standing for one), with the provider's explanation."""
    suffix = f": {short_detail(detail, api_key)}" if detail else ""
    if is_quota_error(status, detail, code):
        return ProviderError(
            "quota", f"{provider}: quota or credit exhausted (HTTP {status}){suffix}", status=status, provider=provider
        )
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
    # retry_after rides along for 503/529, where some providers also say when to come back.
    return ProviderError(
        "http",
        f"{provider}: {label} (HTTP {status}){suffix}",
        status=status,
        retry_after=retry_after,
        provider=provider,
    )


def malformed(provider: str, why: str) -> ProviderError:
    return ProviderError("malformed", f"{provider}: malformed response ({why})", provider=provider)


def empty(provider: str) -> ProviderError:
    return ProviderError("empty", f"{provider}: empty reply", provider=provider)


def refused(provider: str, why: str) -> ProviderError:
    """The model (or a filter in front of it) declined to answer; asking again gets the same answer."""
    return ProviderError("refused", f"{provider}: the provider refused to answer ({why})", provider=provider)


def limit_spent(provider: str, max_output_tokens: int) -> ProviderError:
    """The whole output limit went before any text: typically reasoning tokens, which count toward it."""
    return ProviderError(
        "limit",
        f"{provider}: used its whole output limit ({max_output_tokens} tokens) before writing any reply; "
        "raise its max_output_tokens",
        provider=provider,
    )


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
    # Before TimeoutError: no connection at all is the host's failure, not the model's slowness.
    except aiohttp.ConnectionTimeoutError as exc:
        message = f"{provider}: connection failed (no connection within the connect timeout)"
        raise ProviderError("connection", message, provider=provider, unreachable=True) from exc
    # Must come before ClientConnectionError: aiohttp's ServerTimeoutError is both a TimeoutError and one of those.
    except TimeoutError as exc:
        raise ProviderError("timeout", f"{provider}: no reply within {timeout:g}s", provider=provider) from exc
    # The connection died mid-body (chunked encoding or content-length not completed): the reply is truncated.
    except aiohttp.ClientPayloadError as exc:
        raise cut(provider) from exc
    except aiohttp.ClientError as exc:
        reason = short_detail(str(exc) or type(exc).__name__, api_key)
        # Refused, DNS and TLS failures are ClientConnectorErrors: the request never reached the host.
        unreachable = isinstance(exc, aiohttp.ClientConnectorError)
        raise ProviderError(
            "connection", f"{provider}: connection failed ({reason})", provider=provider, unreachable=unreachable
        ) from exc
