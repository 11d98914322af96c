"""Councils of one channel spread over several webhooks (each takes about 5 posts per 2 s), found again by name
after a restart; and the starter embeds of councils ending together are edited at the channel's pace."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.catalog import Catalog
from storage.database import Database
from tests.council_helpers import convene, make_bot, start_harness
from tests.fakes.provider_server import FakeProviderServer
from tests.harness import DiscordHarness


@pytest.fixture
async def spread(
    monkeypatch: pytest.MonkeyPatch, sqlite_db: Database, catalog: Catalog, tmp_path: Path
) -> AsyncIterator[DiscordHarness]:
    harness = await start_harness(monkeypatch, sqlite_db, catalog, tmp_path, webhooks_per_channel=3)
    yield harness
    await harness.close()


def webhook_of(harness: DiscordHarness, thread_id: int) -> set[int | None]:
    return {post.webhook_id for post in harness.posts_in(thread_id, kinds=("webhook",))}


async def test_councils_of_a_channel_post_through_several_webhooks_reused_after_a_restart(
    spread: DiscordHarness, provider_server: FakeProviderServer, sqlite_db: Database, catalog: Catalog, tmp_path: Path
) -> None:
    harness = spread
    for number in range(3):
        await convene(harness, members="Llama", rounds=1, topic=f"Question {number + 1} of three")
    assert sorted(hook.name for hook in harness.webhooks) == ["AI Council", "AI Council 2", "AI Council 3"]
    used = [webhook_of(harness, thread.id) for thread in harness.threads]
    assert all(len(hooks) == 1 for hooks in used) and len(set().union(*used)) == 3
    assert harness.webhook_creations == {harness.channel.id: 3}

    await harness.restart(make_bot(sqlite_db, catalog, tmp_path, webhooks_per_channel=3))
    publisher = harness.bot.get_cog("CouncilCog").publisher  # type: ignore[attr-defined]
    for hook in harness.webhooks:  # a fresh process knows every one of them as its members'
        assert await publisher.is_member_webhook(harness.channel.id, hook.id)
    assert not await publisher.is_member_webhook(harness.channel.id, 12345)
    await convene(harness, members="Llama", rounds=1, topic="A fourth question")
    assert webhook_of(harness, harness.threads[-1].id) == used[0]  # council 4 shares council 1's webhook
    assert harness.webhook_creations == {harness.channel.id: 3}  # none made anew


async def test_someone_elses_webhook_named_like_ours_is_never_used(
    spread: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    harness = spread
    impostor = harness.seed_webhook(harness.channel, "AI Council 2")
    await convene(harness, members="Llama", rounds=1, topic="First")
    await convene(harness, members="Llama", rounds=1, topic="Second")
    assert impostor.id not in webhook_of(harness, harness.threads[1].id)


async def test_starter_embeds_of_councils_ending_together_are_edited_at_the_channels_pace(
    monkeypatch: pytest.MonkeyPatch,
    sqlite_db: Database,
    catalog: Catalog,
    tmp_path: Path,
    provider_server: FakeProviderServer,
) -> None:
    interval = 0.4
    harness = await start_harness(monkeypatch, sqlite_db, catalog, tmp_path, channel_edit_interval=interval)
    try:
        edits: list[float] = []
        edit = harness.server.edit_message

        def timed(message_id: int, body: dict[str, Any], *, via: str) -> Any:
            if via == "channel":
                edits.append(asyncio.get_running_loop().time())
            return edit(message_id, body, via=via)

        monkeypatch.setattr(harness.server, "edit_message", timed)
        for number in range(3):
            await convene(harness, members="Llama", rounds=1, topic=f"Question {number + 1}", wait=False)
        await harness.settle()
        starters = harness.posts_in(harness.channel.id, kinds=("channel",))
        assert all("Council concluded" not in str(s.embeds) for s in starters)  # the starters show the end
        assert all(any(f["value"] == "concluded" for f in s.embeds[0]["fields"]) for s in starters)
        gaps = [later - earlier for earlier, later in itertools.pairwise(edits)]
        # Two councils run (a person runs two at once): both final edits, at the channel's pace. A progress edit
        # before them may be skipped when Discord's budget has no room for it.
        assert len(edits) >= 2 and min(gaps) >= interval * 0.9
    finally:
        await harness.close()
