"""Discord refusing a post, a connection dropping mid-post, a permission taken away mid-council, and a thread
that cannot be opened: the council is never killed by them, and nothing is posted twice."""

from __future__ import annotations

import discord
import pytest

from storage import repository as repo
from tests.council_helpers import both_transports, convene, member_posts, wait_for
from tests.fakes.provider_server import FakeProviderServer
from tests.harness import DiscordHarness
from tests.harness.harness import BOT_PERMISSIONS

LONG = " ".join(f"Sentence {i} of a long reply." for i in range(120))  # about 3,400 characters: two messages


def closing_embeds(harness: DiscordHarness, thread_id: int) -> list[str]:
    return [
        embed["title"]
        for post in harness.posts_in(thread_id, kinds=("channel",))
        for embed in post.embeds
        if embed.get("title", "").startswith("Council")
    ]


def notices(harness: DiscordHarness, thread_id: int) -> list[str]:
    return [p.content for p in harness.posts_in(thread_id, kinds=("channel",)) if p.content]


async def test_a_post_discord_refuses_is_kept_unshown_with_a_notice_and_the_council_goes_on(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    provider_server.script("llama-test", LONG)
    harness.server.execute_faults = ["ok", "refuse"]  # the reply's second message gets a 400
    await convene(harness, members="Llama, Claude", rounds=1)
    [thread] = harness.threads
    # The part that did go out is taken down: a reply is shown whole or not at all.
    assert member_posts(harness, thread.id) == [("Claude", "claude-test reply #1")]
    shown = harness.posts_in(thread.id, kinds=("webhook",), include_hidden=True)
    assert [(p.author_name, p.deleted) for p in shown] == [("Llama", True), ("Claude", False)]
    [notice] = [n for n in notices(harness, thread.id) if "Discord refused" in n]
    assert "Llama's reply" in notice and "HTTP 400" in notice and "/council export" in notice
    assert closing_embeds(harness, thread.id) == ["Council concluded"]
    lines = {line.author_name: line for line in await repo.transcript(harness.bot.db, 1) if line.author_kind == "ai"}
    assert lines["Llama"].visibility == "refused" and lines["Llama"].content == LONG
    council = await repo.get_council(harness.bot.db, 1)
    assert council is not None and council.state == "concluded"
    # The other members never read what the thread never showed.
    claude = next(r.json for r in provider_server.requests if r.model == "claude-test")
    assert "Sentence 3 of a long reply" not in str(claude)


async def test_each_message_of_a_long_reply_is_noted_as_it_goes_out_so_a_retry_never_repeats_one(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    provider_server.script("llama-test", LONG)
    # The first message goes out; the second meets Discord down twice (the runner waits and goes on).
    harness.server.execute_faults = ["ok", "before", "before"]
    await convene(harness, members="Llama", rounds=1)
    [thread] = harness.threads
    posts = member_posts(harness, thread.id)
    assert [author for author, _ in posts] == ["Llama", "Llama"]
    assert " ".join(content for _, content in posts).split() == LONG.split()
    [line] = [line for line in await repo.transcript(harness.bot.db, 1) if line.author_kind == "ai"]
    assert line.posted_at is not None and len(line.discord_ids) == 2
    assert sum(r.model == "llama-test" for r in provider_server.requests) == 1  # asked once


@both_transports
@pytest.mark.parametrize("fault", ["reset", "reset-after"])
async def test_a_connection_reset_while_the_bot_posts_a_notice_is_looked_up_then_retried(
    harness: DiscordHarness, provider_server: FakeProviderServer, fault: str
) -> None:
    provider_server.script("claude-test", status=401, message="bad key")
    harness.server.send_faults = ["ok", fault]  # after the starter, the failure notice is the bot's next post
    await convene(harness, members="Claude, Llama", rounds=1)
    [thread] = harness.threads
    failures = [n for n in notices(harness, thread.id) if "Claude could not answer" in n]
    assert len(failures) == 1
    assert member_posts(harness, thread.id) == [("Llama", "llama-test reply #1")]
    assert closing_embeds(harness, thread.id) == ["Council concluded"]


@both_transports
async def test_a_member_post_whose_connection_drops_after_it_landed_is_not_posted_again(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    harness.server.execute_faults = ["reset-after"]
    await convene(harness, members="Llama, Claude", rounds=1)
    [thread] = harness.threads
    assert member_posts(harness, thread.id) == [("Llama", "llama-test reply #1"), ("Claude", "claude-test reply #1")]


async def test_losing_manage_webhooks_pauses_the_council_naming_it_and_resume_goes_on(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    provider_server.script("llama-test", delay=0.3)
    await convene(harness, members="Claude, Llama", rounds=1, wait=False)
    [thread] = harness.threads
    await wait_for(lambda: len(provider_server.requests) == 2)  # Claude posted, Llama is thinking
    # Someone deletes the members' webhook and takes Manage Webhooks from the bot: it cannot make a new one.
    [hook] = harness.webhooks
    hook.deleted = True
    harness.set_bot_permissions(BOT_PERMISSIONS & ~discord.Permissions(manage_webhooks=True))
    await harness.settle()
    council = await repo.get_council(harness.bot.db, 1)
    assert council is not None and council.state == "paused"
    [warning] = [n for n in notices(harness, thread.id) if "is paused" in n]
    assert "**Manage Webhooks**" in warning and "/council resume" in warning
    assert member_posts(harness, thread.id) == [("Claude", "claude-test reply #1")]

    harness.set_bot_permissions(BOT_PERMISSIONS)
    resumed = await harness.slash(harness.members["convener"], "council", "resume", channel=thread)
    assert not resumed.ephemeral
    await harness.settle()
    assert member_posts(harness, thread.id) == [("Claude", "claude-test reply #1"), ("Llama", "llama-test reply #1")]
    assert sum(r.model == "llama-test" for r in provider_server.requests) == 1  # its reply was kept, not asked again
    assert closing_embeds(harness, thread.id) == ["Council concluded"]


async def test_losing_send_messages_in_threads_pauses_and_tells_the_convener_privately(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    provider_server.script("claude-test", status=401, message="bad key")
    provider_server.script("llama-test", delay=0.3)
    await convene(harness, members="Llama, Claude", rounds=1, wait=False)
    [thread] = harness.threads
    await wait_for(lambda: provider_server.in_flight == 1)  # Llama thinks; Claude's failure notice comes next
    harness.set_bot_permissions(BOT_PERMISSIONS & ~discord.Permissions(send_messages_in_threads=True))
    await harness.settle()
    council = await repo.get_council(harness.bot.db, 1)
    assert council is not None and council.state == "paused"
    [dm] = [p for p in harness.posts if p.kind == "dm"]
    assert "**Send Messages in Threads**" in (dm.content or "") and "paused" in (dm.content or "")
    assert not any("Claude could not answer" in n for n in notices(harness, thread.id))

    harness.set_bot_permissions(BOT_PERMISSIONS)
    await harness.slash(harness.members["convener"], "council", "resume", channel=thread)
    await harness.settle()
    assert [n for n in notices(harness, thread.id) if "Claude could not answer" in n]  # once it could
    assert closing_embeds(harness, thread.id) == ["Council concluded"]


async def test_a_thread_discord_refuses_to_open_leaves_no_starter_and_no_council(harness: DiscordHarness) -> None:
    harness.server.thread_faults = [400]
    result = await convene(harness, members="Llama", rounds=1)
    assert result.ephemeral and "could not open the council's thread" in result.content
    assert "nothing was convened" in result.content
    starters = harness.posts_in(harness.channel.id, kinds=("channel",), include_hidden=True)
    assert starters and all(post.deleted for post in starters)
    assert await repo.get_council(harness.bot.db, 1) is None
    assert harness.threads == []


@pytest.mark.parametrize("fault", ["reset", "reset-after"])
async def test_a_starter_whose_post_fails_uncertainly_leaves_nothing_behind(
    harness: DiscordHarness, fault: str
) -> None:
    harness.server.send_faults = [fault]
    result = await convene(harness, members="Llama", rounds=1)
    assert "could not open the council's thread" in result.content
    assert all(post.deleted for post in harness.posts_in(harness.channel.id, kinds=("channel",), include_hidden=True))
    assert await repo.get_council(harness.bot.db, 1) is None


async def test_a_rate_limited_thread_creation_is_tried_again(harness: DiscordHarness) -> None:
    harness.bot.get_cog("CouncilCog").thread_retry_base = 0.01  # type: ignore[attr-defined]
    harness.server.thread_faults = [429, 429]
    result = await convene(harness, members="Llama", rounds=1)
    [thread] = harness.threads
    assert result.content == f"Council #1 is convened in <#{thread.id}>."
    assert member_posts(harness, thread.id) == [("Llama", "llama-test reply #1")]


async def test_a_thread_rate_limited_past_every_retry_leaves_nothing_behind(harness: DiscordHarness) -> None:
    harness.bot.get_cog("CouncilCog").thread_retry_base = 0.01  # type: ignore[attr-defined]
    harness.server.thread_faults = [429] * 10
    result = await convene(harness, members="Llama", rounds=1)
    assert "could not open the council's thread" in result.content
    assert await repo.get_council(harness.bot.db, 1) is None
    # The refused attempt does not count against the person: they may convene again at once.
    harness.server.thread_faults = []
    again = await convene(harness, members="Llama", rounds=1)
    assert again.content.startswith("Council #")
