"""Discord faults: a deleted webhook, a deleted thread, uncertain posts, restarts mid-post; and benching."""

from __future__ import annotations

import asyncio
from pathlib import Path

import discord
import pytest

from bot.catalog import Catalog
from storage import repository as repo
from storage.database import Database
from tests.council_helpers import both_transports, convene, make_bot, member_posts, wait_for
from tests.fakes.provider_server import FakeProviderServer
from tests.harness import DiscordHarness
from tests.harness.harness import BOT_PERMISSIONS


@both_transports
async def test_a_deleted_webhook_is_made_again_once(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    await convene(harness, members="Llama", rounds=1)
    [hook] = harness.webhooks
    hook.deleted = True  # someone removed it in the channel settings
    await convene(harness, members="Llama", rounds=1, topic="After the webhook was deleted")
    second = harness.threads[1]
    assert member_posts(harness, second.id) == [("Llama", "llama-test reply #2")]
    assert harness.webhook_creations == {harness.channel.id: 2}


async def test_an_uncertain_post_is_looked_up_before_posting_again(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    harness.server.execute_faults = ["after"]  # the post lands, but the bot sees a 502
    await convene(harness, members="Llama, Claude", rounds=1)
    [thread] = harness.threads
    assert member_posts(harness, thread.id) == [("Llama", "llama-test reply #1"), ("Claude", "claude-test reply #1")]
    line = (await repo.transcript(harness.bot.db, 1))[0]
    assert line.discord_ids == [harness.posts_in(thread.id, kinds=("webhook",))[0].message_id]


async def test_a_failed_post_is_retried_once(harness: DiscordHarness, provider_server: FakeProviderServer) -> None:
    harness.server.execute_faults = ["before"]  # the 502 came before anything was posted
    await convene(harness, members="Llama", rounds=1)
    [thread] = harness.threads
    assert member_posts(harness, thread.id) == [("Llama", "llama-test reply #1")]


async def test_a_deleted_thread_concludes_the_council_and_keeps_the_transcript(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    provider_server.script("llama-test", delay=0.3)
    await convene(harness, members="Claude, Llama", rounds=2, wait=False)
    [thread] = harness.threads
    await wait_for(lambda: len(provider_server.requests) == 2)  # Claude posted, Llama is thinking
    harness.delete_thread(thread)
    await harness.settle()
    council = await repo.get_council(harness.bot.db, 1)
    assert council is not None and council.state == "concluded"
    assert council.end_reason == "The council's thread was deleted or closed; its transcript is kept."
    lines = await repo.transcript(harness.bot.db, 1)
    assert [(line.author_name, line.content) for line in lines] == [
        ("Claude", "claude-test reply #1"),
        ("Llama", "llama-test reply #1"),
    ]
    assert len(provider_server.requests) == 2  # nobody was asked after the thread was gone


@both_transports
async def test_a_restart_after_posting_but_before_recording_does_not_post_twice(
    harness: DiscordHarness,
    provider_server: FakeProviderServer,
    sqlite_db: Database,
    catalog: Catalog,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original_record = repo.record_posted
    died = False

    async def die_before_recording(db: Database, message_id: int, ids: list[int]) -> None:
        nonlocal died
        if died:
            await original_record(db, message_id, ids)
            return
        died = True
        await asyncio.Event().wait()  # the process stops here: posted, never recorded

    monkeypatch.setattr(repo, "record_posted", die_before_recording)
    await convene(harness, members="Llama, Claude", rounds=1, wait=False)
    await wait_for(lambda: died)
    [thread] = harness.threads
    assert member_posts(harness, thread.id) == [("Llama", "llama-test reply #1")]
    # A new process on the same database and Discord: the old one's tasks are gone, not awaited.
    waiting_for_people = harness.ignore_task
    harness.ignore_task = lambda task: True
    await harness.restart(make_bot(sqlite_db, catalog, tmp_path))
    harness.ignore_task = waiting_for_people
    await harness.dispatch("ready")
    await harness.settle()
    assert member_posts(harness, thread.id) == [("Llama", "llama-test reply #1"), ("Claude", "claude-test reply #1")]


async def test_a_member_failing_three_turns_in_a_row_is_benched(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    provider_server.script("deepseek-test", status=500, message="down")
    await convene(harness, members="DeepSeek, Llama", rounds=5)
    [thread] = harness.threads
    notices = [p.content for p in harness.posts_in(thread.id, kinds=("channel",)) if p.content]
    assert sum("DeepSeek could not answer" in n for n in notices) == 3
    assert any("DeepSeek failed 3 turns in a row and sits out the rest" in n for n in notices)
    assert [a for a, _ in member_posts(harness, thread.id)] == ["Llama"] * 5
    assert sum(r.model == "deepseek-test" for r in provider_server.requests) == 3 * 3  # three calls per failed turn
    members = await repo.list_members(harness.bot.db, 1)
    assert [m.benched for m in members] == [True, False]


async def test_an_archived_thread_is_reopened_by_the_next_post(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    provider_server.script("llama-test", delay=0.3)
    await convene(harness, members="Claude, Llama", rounds=1, wait=False)
    [thread] = harness.threads
    await wait_for(lambda: len(provider_server.requests) == 2)
    harness.server.update_thread(thread.id, {"archived": True})  # Discord's auto-archive, or a user
    await harness.settle()
    assert member_posts(harness, thread.id) == [("Claude", "claude-test reply #1"), ("Llama", "llama-test reply #1")]
    council = await repo.get_council(harness.bot.db, 1)
    assert council is not None and council.state == "concluded" and council.end_reason.startswith("All 1 round")


async def test_a_locked_thread_concludes_the_council_and_keeps_the_transcript(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    provider_server.script("llama-test", delay=0.3)
    await convene(harness, members="Claude, Llama", rounds=2, wait=False)
    [thread] = harness.threads
    await wait_for(lambda: len(provider_server.requests) == 2)
    # A moderator locks and archives it; the bot may not manage threads, so it cannot post there.
    harness.set_bot_permissions(BOT_PERMISSIONS & ~discord.Permissions(manage_threads=True))
    harness.server.update_thread(thread.id, {"archived": True, "locked": True})
    await harness.settle()
    council = await repo.get_council(harness.bot.db, 1)
    assert council is not None and council.state == "concluded"
    assert council.end_reason == "The council's thread was deleted or closed; its transcript is kept."
    lines = await repo.transcript(harness.bot.db, 1)
    assert [line.author_name for line in lines if line.author_kind == "ai"] == ["Claude", "Llama"]
