"""The fake Discord over loopback HTTP: discord.py's own request code (its limiter, its retries, the bot's
http_trace) against Discord's rate limits as the model enforces them, and faults as discord.py meets them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace

import aiohttp
import discord
import pytest
from discord.ext import commands

from tests.harness import DiscordHarness, RateLimits, UnhandledBotError
from tests.harness.rate_limits import WEBHOOK_ROUTES_ONLY

NO_MENTIONS = discord.AllowedMentions.none()


class Traced:
    """What the bot's aiohttp tracing sees: every response's status and headers, as a scheduler reads them."""

    def __init__(self) -> None:
        self.responses: list[tuple[str, str, int, dict[str, str]]] = []
        self.config = aiohttp.TraceConfig()
        self.config.on_request_end.append(self._ended)

    async def _ended(
        self, session: aiohttp.ClientSession, context: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        self.responses.append((params.method, params.url.path, params.response.status, dict(params.response.headers)))


def plain_bot(trace: aiohttp.TraceConfig | None = None) -> commands.Bot:
    intents = discord.Intents.default()
    intents.message_content = True
    return commands.Bot(command_prefix="!", intents=intents, http_trace=trace)


@pytest.fixture
async def traced() -> Traced:
    return Traced()


@pytest.fixture
def limits() -> RateLimits:
    return RateLimits()


@pytest.fixture
async def harness(monkeypatch: pytest.MonkeyPatch, traced: Traced, limits: RateLimits) -> AsyncIterator[DiscordHarness]:
    h = await DiscordHarness.start(plain_bot(traced.config), monkeypatch, http=True, rate_limits=limits)
    yield h
    await h.close()


async def webhook_of(harness: DiscordHarness) -> discord.Webhook:
    return await harness.channel.create_webhook(name="Members")


async def test_the_bots_tracing_sees_discords_rate_limit_headers(harness: DiscordHarness, traced: Traced) -> None:
    message = await harness.channel.send("hello", allowed_mentions=NO_MENTIONS)
    webhook = await webhook_of(harness)
    await webhook.send("from a member", username="Llama", wait=True)
    assert [(method, status) for method, _, status, _ in traced.responses] == [("POST", 200)] * 3
    for _, _, _, headers in traced.responses:
        assert headers["Content-Type"] == "application/json"  # exactly: discord.py parses JSON only then
        assert headers["Via"] == "1.1 google"
        assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "X-RateLimit-Reset-After"} <= set(
            headers
        )
    send, create, execute = (headers for _, _, _, headers in traced.responses)
    assert (send["X-RateLimit-Limit"], send["X-RateLimit-Remaining"], send["X-RateLimit-Reset-After"]) == (
        "5",
        "4",
        "5.000",
    )
    assert (execute["X-RateLimit-Limit"], execute["X-RateLimit-Reset-After"]) == ("5", "2.000")
    assert len({send["X-RateLimit-Bucket"], create["X-RateLimit-Bucket"], execute["X-RateLimit-Bucket"]}) == 3
    assert harness.posts_in(harness.channel.id)[0].message_id == message.id


async def test_discord_py_paces_a_burst_of_webhook_posts_and_never_trips_the_bucket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Discord at ten times the speed: 5 posts per 0.2 s per webhook.
    limits = RateLimits(time_scale=0.1)
    harness = await DiscordHarness.start(plain_bot(), monkeypatch, http=True, rate_limits=limits)
    try:
        webhook = await webhook_of(harness)
        contents = [f"post {i}" for i in range(16)]
        sent = await asyncio.gather(*(webhook.send(c, username="Llama", wait=True) for c in contents))
        assert sorted(m.content for m in sent) == sorted(contents)
        assert sorted(p.content or "" for p in harness.posts_in(harness.channel.id)) == sorted(contents)  # once each
        # discord.py's webhook adapter sends one request at a time per webhook, and when Remaining reaches 0
        # holds the next one for Reset-After: not a single 429, from the very first window.
        assert limits.count_429s() == 0
        assert limits.usage()["webhook messages"] == 16
    finally:
        await harness.close()


async def test_discord_py_learns_a_channels_bucket_from_the_headers(
    harness: DiscordHarness, limits: RateLimits
) -> None:
    # 5 messages per 5 s per channel, ten times faster: a burst of 11 needs three windows.
    limits.time_scale = 0.1
    contents = [f"notice {i}" for i in range(11)]
    await asyncio.gather(*(harness.channel.send(c, allowed_mentions=NO_MENTIONS) for c in contents))
    assert sorted(p.content or "" for p in harness.posts_in(harness.channel.id)) == sorted(contents)
    # HTTPClient sends a route's first request alone (limit 1 until it has seen headers), then spends exactly
    # what X-RateLimit-Remaining allows and sleeps Reset-After: no 429 either.
    assert limits.count_429s() == 0


async def test_discord_py_holds_a_caller_for_reset_after_though_the_bucket_had_room(
    harness: DiscordHarness, limits: RateLimits
) -> None:
    limits.time_scale = 0.1  # 5 messages per 0.5 s
    await asyncio.gather(*(harness.channel.send(f"notice {i}") for i in range(4)))
    done = asyncio.get_running_loop().time()
    served = [seen for seen in limits.requests if seen.bucket == "message create"]
    assert len(served) == 4 and not any(seen.limited for seen in served)
    # All four landed in the bucket's first window, one request to spare; yet the burst returned only once
    # that window had reset: discord.py counts requests in flight against Remaining twice
    # (min(Remaining, limit - outgoing) - outgoing) and sleeps out Reset-After for one of the callers.
    assert served[-1].at < served[0].at + 0.5 <= done


async def test_a_global_burst_is_answered_429_and_discord_py_waits_and_recovers(
    harness: DiscordHarness, limits: RateLimits
) -> None:
    # 20 channels, 3 messages each: every channel's bucket keeps room, the bot's 50 per second does not.
    # (With a 4th, discord.py would hold one caller per channel for the bucket's whole Reset-After: it counts
    # requests in flight against Remaining twice, min(Remaining, limit - outgoing) - outgoing.)
    channels = [harness.channel, *(harness.add_channel(f"room-{i}") for i in range(19))]
    sends = [
        channel.send(f"{channel.name} {i}", allowed_mentions=NO_MENTIONS) for channel in channels for i in range(3)
    ]
    sent = await asyncio.gather(*sends)
    assert len({message.id for message in sent}) == 60
    assert len([p for p in harness.posts if p.kind == "channel"]) == 60  # each exactly once
    global_429s = limits.count_429s("global")
    # discord.py has no global limiter of its own: it learns of the limit from 429s (about 10 here, fewer if
    # the machine is so slow that the burst spreads over more than a second).
    assert global_429s >= 1
    assert limits.count_429s() == global_429s
    # Every refused request was tried again after retry_after, and Discord counted each 429 as invalid.
    assert limits.usage()["message create"] == 60
    assert limits.invalid_requests == global_429s


async def test_a_dropped_connection_reaches_discord_py_as_an_aiohttp_error(harness: DiscordHarness) -> None:
    webhook = await webhook_of(harness)
    harness.server.send_faults = ["reset"]
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await harness.channel.send("lost before it landed")
    harness.server.execute_faults = ["reset-after"]
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await webhook.send("landed, but the answer was lost", username="Llama", wait=True)
    assert [p.content for p in harness.posts] == ["landed, but the answer was lost"]
    assert harness.http_server is not None and harness.http_server.dropped == 2
    await harness.channel.send("the next request gets a fresh connection")


async def test_discord_py_retries_a_502_itself_so_a_post_that_landed_is_posted_twice(harness: DiscordHarness) -> None:
    # In HTTP mode a fault is one answer: discord.py's webhook adapter retries any 5xx (after 1 s), and a
    # webhook post has no nonce, so the 502 that came after the post landed leaves it there twice. In-process,
    # the same fault stands for discord.py giving up after its retries (the bot sees the 502).
    webhook = await webhook_of(harness)
    harness.server.execute_faults = ["after"]
    sent = await webhook.send("uncertain", username="Llama", wait=True)
    assert [p.content for p in harness.posts] == ["uncertain", "uncertain"]
    assert sent.id == harness.posts[1].message_id


async def test_past_the_ban_line_discord_py_raises_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # The line is 10,000 per 10 minutes; four make the same point. (Ten times faster: discord.py sleeps out
    # the channel's bucket before it raises.)
    limits = RateLimits(invalid_limit=4, time_scale=0.1)
    harness = await DiscordHarness.start(plain_bot(), monkeypatch, http=True, rate_limits=limits)
    try:
        harness.set_bot_permissions(discord.Permissions.none())
        for _ in range(4):
            with pytest.raises(discord.Forbidden):
                await harness.channel.send("refused")
        assert limits.bans == 1
        with pytest.raises(discord.HTTPException) as banned:
            await harness.channel.send("banned")
        assert banned.value.status == 429 and "blocked from accessing our API" in banned.value.text
        assert limits.banned_answers == 1  # no Via header: discord.py did not wait and retry
    finally:
        await harness.close()


async def test_a_route_the_harness_does_not_fake_fails_the_test_naming_it(harness: DiscordHarness) -> None:
    with pytest.raises(discord.NotFound):
        [pin async for pin in harness.channel.pins()]  # Discord answers an unknown route with 404
    with pytest.raises(UnhandledBotError, match=r"no fake for GET /api/v10/channels/\d+/messages/pins"):
        await harness.settle()


async def test_a_restarted_bot_gets_a_new_session_on_the_same_server(harness: DiscordHarness) -> None:
    assert harness.http_server is not None
    base_url = harness.http_server.base_url
    old = harness.bot.http
    await harness.channel.send("before")
    await harness.restart(plain_bot())
    assert old._HTTPClient__session.closed  # type: ignore[attr-defined]
    assert harness.http_server.base_url == base_url == discord.http.Route.BASE
    await harness.channel.send("after")
    assert [p.content for p in harness.posts] == ["before", "after"]


async def test_in_process_a_429_is_waited_out_as_discord_py_would(monkeypatch: pytest.MonkeyPatch) -> None:
    limits = RateLimits(routes=WEBHOOK_ROUTES_ONLY, default=None, global_limit=None, time_scale=0.1)
    harness = await DiscordHarness.start(plain_bot(), monkeypatch, rate_limits=limits)
    try:
        webhook = await webhook_of(harness)
        contents = [f"post {i}" for i in range(12)]
        await asyncio.gather(*(webhook.send(c, username="Llama", wait=True) for c in contents))
        assert sorted(p.content or "" for p in harness.posts) == sorted(contents)
        # No discord.py limiter runs in-process, so the requests meet the 429s and wait them out.
        assert limits.count_429s() >= 2 and limits.usage()["webhook messages"] == 12
    finally:
        await harness.close()
