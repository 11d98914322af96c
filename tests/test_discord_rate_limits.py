"""discord.py's own rate limiter, on its real HTTP path, keeps webhook posts paced and complete.

A small aiohttp app on 127.0.0.1 plays Discord's webhook execute endpoint with Discord's rate-limit
headers (a bucket of 5 requests per window) and answers 429 with `retry_after` when a bucket is
exceeded, as Discord does. The members of a council share one webhook per channel, so a parallel
council is exactly this: many posts racing for one bucket.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import discord
import pytest
from aiohttp import web

WINDOW = 0.4  # seconds; Discord's is about 2 s for 5 webhook posts
BUCKET = 5


class FakeWebhookEndpoint:
    def __init__(self) -> None:
        self.created: list[str] = []
        self.rate_limited = 0
        self.window_start = 0.0
        self.used = 0
        self.forced_429s = 2  # the first two posts meet a 429 whatever the headers said

    async def execute(self, request: web.Request) -> web.Response:
        body = await request.json()
        now = time.monotonic()
        if now - self.window_start >= WINDOW:
            self.window_start, self.used = now, 0
        reset_after = max(0.0, WINDOW - (now - self.window_start))
        if self.used >= BUCKET or self.forced_429s > 0:
            self.forced_429s = max(0, self.forced_429s - 1)
            self.rate_limited += 1
            limited = {
                "message": "You are being rate limited.",
                "retry_after": round(reset_after or 0.05, 3),
                "global": False,
            }
            return json_response(limited, status=429, headers={"Via": "1.1 google", "Retry-After": "1"})
        self.used += 1
        self.created.append(body["content"])
        message = {
            "id": str(1000 + len(self.created)),
            "channel_id": "5",
            "content": body["content"],
            "author": {"id": "1", "username": body.get("username", "hook"), "discriminator": "0000", "avatar": None},
            "webhook_id": "1",
            "attachments": [],
            "embeds": [],
            "mentions": [],
            "mention_roles": [],
            "pinned": False,
            "mention_everyone": False,
            "tts": False,
            "timestamp": "2026-11-26T00:00:00+00:00",
            "edited_timestamp": None,
            "type": 0,
            "flags": 0,
        }
        headers = {
            "X-RateLimit-Limit": str(BUCKET),
            "X-RateLimit-Remaining": str(BUCKET - self.used),
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": "webhook-1",
        }
        return json_response(message, headers=headers)


def json_response(data: object, *, status: int = 200, headers: dict[str, str]) -> web.Response:
    # Content-Type exactly application/json (no charset): discord.py parses JSON only then.
    body = discord.utils._to_json(data).encode()
    return web.Response(body=body, status=status, headers={**headers, "Content-Type": "application/json"})


@pytest.fixture
async def endpoint(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeWebhookEndpoint]:
    fake = FakeWebhookEndpoint()
    app = web.Application()
    app.router.add_post("/api/v10/webhooks/{webhook_id}/{token}", fake.execute)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    monkeypatch.setattr(discord.http.Route, "BASE", f"http://127.0.0.1:{port}/api/v10")
    yield fake
    await runner.cleanup()


async def test_racing_posts_are_paced_not_dropped_or_doubled(endpoint: FakeWebhookEndpoint) -> None:
    async with aiohttp.ClientSession() as session:
        webhook = discord.Webhook.partial(1, "token", session=session)
        contents = [f"member post {i}" for i in range(20)]
        started = time.monotonic()
        sent = await asyncio.wait_for(
            asyncio.gather(
                *(
                    webhook.send(c, username="Llama", wait=True, allowed_mentions=discord.AllowedMentions.none())
                    for c in contents
                )
            ),
            timeout=30,
        )
        elapsed = time.monotonic() - started
    assert sorted(endpoint.created) == sorted(contents)  # every post exactly once
    assert sorted(m.content for m in sent) == sorted(contents)
    assert endpoint.rate_limited >= 2  # the 429 path was taken and recovered from
    assert elapsed >= (len(contents) / BUCKET - 1) * WINDOW * 0.9  # paced by the bucket, not hammered
