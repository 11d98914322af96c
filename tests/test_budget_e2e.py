"""Discord's rate budget end to end: the real bot over loopback HTTP, through discord.py's own request code,
against the fake Discord's model of Discord's rate limits (tests/harness/rate_limits.py).

The global limit is narrowed (Discord's is 50 a second) so that three streaming councils ask for more than it
allows, as hundreds would against the real one: the bot must spend it on final words first, fold the streaming
edits it cannot afford into later ones, and never be answered 429."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.catalog import Catalog
from cogs.council._budget import DiscordBudget
from storage import repository as repo
from storage.database import Database
from tests.council_helpers import convene, start_harness
from tests.fakes.provider_server import FakeProviderServer
from tests.harness import DiscordHarness
from tests.harness.rate_limits import RateLimits
from tests.test_governance_e2e import setup_governance
from tests.test_streaming_discord import reply_of, webhook_posts

NARROW = 6  # requests a second the fake Discord allows the bot
MEMBERS = ("claude-test", "deepseek-test", "llama-test")


def budget_of(harness: DiscordHarness) -> DiscordBudget:
    return harness.bot.get_cog("CouncilCog").budget  # type: ignore[union-attr]


@pytest.fixture
async def narrow(
    monkeypatch: pytest.MonkeyPatch, sqlite_db: Database, catalog: Catalog, tmp_path: Path
) -> AsyncIterator[DiscordHarness]:
    limits = RateLimits(global_limit=NARROW)
    harness = await start_harness(
        monkeypatch, sqlite_db, catalog, tmp_path, http=True, rate_limits=limits, max_councils_per_user=5
    )
    harness.settle_timeout = 120
    budget_of(harness).global_per_second = NARROW  # what Discord grants this bot (50 for the real one)
    yield harness
    await harness.close()


async def metrics(harness: DiscordHarness) -> set[str]:
    port = await harness.bot.start_health(0)  # type: ignore[attr-defined]
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as response:
        return set((await response.text()).splitlines())


async def test_over_the_global_budget_final_words_go_first_edits_fold_into_later_ones_and_no_429(
    narrow: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    await setup_governance(narrow, mode="notify")
    reply = reply_of(60)
    for model in MEMBERS:
        provider_server.script(model, reply, chunk_delay=0.04)  # each reply streams over about 2.4 s
    for _ in range(3):
        await convene(narrow, members="Claude, DeepSeek, Llama", rounds=1, wait=False)
    await narrow.settle()

    limits = narrow.rate_limits
    assert limits is not None and limits.count_429s() == 0, limits.rate_limited
    assert len(narrow.threads) == 3
    budget = budget_of(narrow).report()
    # Demand was past the narrowed budget: streaming edits were skipped, their words carried by later edits.
    assert budget.skipped > 0 and budget.limited == 0
    for number, thread in enumerate(narrow.threads, start=1):
        posts = webhook_posts(narrow, thread.id)
        lines = [line for line in await repo.transcript(narrow.bot.db, number) if line.author_kind == "ai"]
        assert [(post.author_name, post.content) for post in posts] == [
            (line.author_name, line.content) for line in lines
        ]  # every reply ends exactly as stored
        for post in posts:
            shown = [edit.content or "" for edit in post.edits]
            assert all(reply.startswith(text) for text in shown) and len(set(shown)) == len(shown)
    # Never more than Discord allows in any second, and the interaction answers were never held back.
    assert max(limits.usage().values()) > 0
    assert await narrow_peak(limits) <= NARROW


async def narrow_peak(limits: RateLimits) -> int:
    """The most requests the bot made in any one second (interaction answers aside)."""
    times = sorted(seen.at for seen in limits.requests if seen.global_key is not None and not seen.limited)
    peak, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= limits.global_window:
            start += 1
        peak = max(peak, end - start + 1)
    return peak


async def test_invalid_requests_past_the_brake_stop_streaming_edits_and_show_in_metrics(
    narrow: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    budget_of(narrow).invalid_brake = 3  # Discord's ban line is 10,000; the bot brakes at 1,000
    await setup_governance(narrow, mode="notify")
    narrow.server.send_faults.extend(["forbid"] * 3)
    for _ in range(3):  # three convenes whose starter Discord refuses (403): three invalid requests
        refused = await convene(narrow, members="Claude", rounds=1)
        assert refused.ephemeral and "nothing was convened" in " ".join(refused.texts), refused.texts
    assert budget_of(narrow).report().braking
    reply = reply_of(60)
    provider_server.script("claude-test", reply, chunk_delay=0.04)
    await convene(narrow, members="Claude", rounds=1)

    [thread] = narrow.threads
    [claude] = webhook_posts(narrow, thread.id)
    assert claude.content == reply
    # Braking: the words so far were never shown; the first words, then the final edit only.
    assert [edit.content for edit in claude.edits] == [reply]
    lines = await metrics(narrow)
    assert "ai_council_discord_braking 1" in lines
    assert any(line.startswith("ai_council_discord_invalid_requests ") for line in lines)
