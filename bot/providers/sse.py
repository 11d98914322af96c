"""A minimal Server-Sent Events reader, enough for both providers' streaming formats."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

from bot.providers.timeouts import ReplyClock


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str
    data: str


async def _lines(content: aiohttp.StreamReader, clock: ReplyClock | None) -> AsyncIterator[str]:
    # Our own splitting rather than StreamReader.readline(): readline raises on lines above aiohttp's
    # buffer limit, and a single big SSE payload should not turn into a confusing ValueError.
    buffer = b""
    while True:
        if clock is None:
            chunk = await content.readany()
        else:
            async with clock.waiting():  # only the wait for the network: never the caller's time with a line
                chunk = await content.readany()
            clock.alive()
        if not chunk:
            break
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            yield line.rstrip(b"\r").decode("utf-8", errors="replace")
    if buffer:
        yield buffer.rstrip(b"\r").decode("utf-8", errors="replace")


async def iter_sse(content: aiohttp.StreamReader, clock: ReplyClock | None = None) -> AsyncIterator[SseEvent]:
    """Yield one SseEvent per blank-line-terminated block; comments (":") and retry/id fields are ignored.

    With a `clock`, each wait for the body is bounded by its deadlines, and every piece that arrives counts
    as a sign of life (keep-alive comments too: the connection is not silent).
    """
    event = ""
    data: list[str] = []
    async for line in _lines(content, clock):
        if not line:
            if data:
                yield SseEvent(event or "message", "\n".join(data))
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
    # A body that ends without the final blank line still delivered its last event.
    if data:
        yield SseEvent(event or "message", "\n".join(data))
