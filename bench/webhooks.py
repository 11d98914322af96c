"""Figure 7, webhooks per channel: parallel councils in one channel, with Discord's webhook rate limit.

Each webhook takes about 5 requests per 2 seconds. The real bot runs in the tests' Discord harness with that
bucket modelled (tests/harness/rate_limits.py, its webhook bucket alone; in-process, a request over it waits, as
discord.py waits out a 429); `councils` parallel councils of `members` members, one round each, are convened in
one channel at once, and the wall time until the last member post is measured, with one webhook per channel,
then with WEBHOOKS_PER_CHANNEL's default. The starters and threads of the convenes are given room in the bot's
rate budget too (they are paced by the channel's own buckets, the same with one webhook or several).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bench.report import Figure
from bench.rig import bench_catalog, bench_settings, database, members
from bot.app import CouncilBot
from bot.settings import DEFAULT_WEBHOOKS_PER_CHANNEL
from tests.fakes.provider_server import FakeProviderServer
from tests.harness import DiscordHarness, RateLimits
from tests.harness.rate_limits import WEBHOOK_MESSAGES, WEBHOOK_ROUTES_ONLY

WEBHOOK_RATE = (WEBHOOK_MESSAGES.limit, WEBHOOK_MESSAGES.per)  # requests per seconds, per webhook
UNLIMITED_BUCKET = (1000, 1.0)  # a bucket the fake Discord of this figure does not limit


async def webhook_spread(workdir: Path, *, councils: int, seated: int = 3) -> list[Figure]:
    spread = DEFAULT_WEBHOOKS_PER_CHANNEL
    one = await _wall_time(workdir, councils, seated, webhooks=1)
    many = await _wall_time(workdir, councils, seated, webhooks=spread)
    posts = councils * seated
    detail = (
        f"{councils} parallel councils of {seated} members (one round) convened at once in one channel, the real bot "
        f"in the Discord harness with a webhook bucket of {WEBHOOK_RATE[0]} requests per {WEBHOOK_RATE[1]:g} s: wall "
        "time to the last council's end"
    )
    return [
        Figure(
            "webhook_spread_speedup",
            one[0] / many[0] if many[0] else None,
            "ratio",
            2.0,
            cmp=">=",
            valid=one[2] == many[2] == posts,
            extra={
                "wall_s_one_webhook": one[0],
                f"wall_s_{spread}_webhooks": many[0],
                "rate_limited_waits_one_webhook": one[1],
                f"rate_limited_waits_{spread}_webhooks": many[1],
                "member_posts": posts,
                "detail": detail + f", with 1 webhook ÷ with {spread}",
            },
        )
    ]


async def _wall_time(workdir: Path, councils: int, seated: int, *, webhooks: int) -> tuple[float, int, int]:
    """(seconds, waits for the bucket, member posts) for one run."""
    seats = members(seated)
    monkeypatch = pytest.MonkeyPatch()
    server = FakeProviderServer()
    await server.start()
    try:
        async with database("sqlite", workdir) as db:
            settings = bench_settings(
                workdir,
                councils,
                webhooks_per_channel=webhooks,
                channel_edit_interval=0.0,  # starter edits are not what is measured, nor waited for
            )
            bot = CouncilBot(settings, bench_catalog(server.base_url, seats), db)
            # Only the webhook bucket: the figure is about webhooks, not the bot's other limits.
            limits = RateLimits(routes=WEBHOOK_ROUTES_ONLY, default=None, global_limit=None)
            harness = await DiscordHarness.start(bot, monkeypatch, settle_timeout=300, rate_limits=limits)
            try:
                # The budget is told what this fake Discord limits, as Discord's headers would tell it.
                budget = harness.bot.get_cog("CouncilCog").budget  # type: ignore[attr-defined]
                budget.known = {kind: UNLIMITED_BUCKET for kind in budget.known} | {"webhook": budget.known["webhook"]}
                started = time.perf_counter()
                for number in range(councils):
                    await harness.slash(
                        harness.members["convener"],
                        "council",
                        "convene",
                        topic=f"Question {number + 1}: should our city replace its parking lots with parks?",
                        members=", ".join(seat.name for seat in seats),
                        rounds=1,
                        mode="parallel",
                        wait_background=False,
                    )
                expected = councils * seated
                async with asyncio.timeout(300):
                    # The fake Discord offers no event to wait on; the poll is bounded by the timeout.
                    while _member_posts(harness) < expected:  # noqa: ASYNC110
                        await asyncio.sleep(0.01)
                wall = time.perf_counter() - started
                await harness.settle(timeout=300)
                posts = sum(len(harness.posts_in(thread.id, kinds=("webhook",))) for thread in harness.threads)
                return wall, limits.count_429s(), posts
            finally:
                await harness.close()
    finally:
        monkeypatch.undo()
        await server.stop()


def _member_posts(harness: DiscordHarness) -> int:
    return sum(1 for post in harness.posts if post.kind == "webhook")
