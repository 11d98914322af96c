"""The real bot driven as Discord would: slash commands in, thread posts out, providers over loopback HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path

import discord
import pytest

from bot.catalog import Catalog
from storage import repository as repo
from storage.database import Database
from tests.conftest import TEST_KEYS
from tests.council_helpers import TOPIC, both_transports, convene, member_posts, wait_for
from tests.fakes.provider_server import FakeProviderServer
from tests.harness import DiscordHarness


@both_transports
@pytest.mark.parametrize("mode", ["round-robin", "parallel"])
async def test_convened_council_runs_in_its_thread_under_members_names(
    harness: DiscordHarness, provider_server: FakeProviderServer, mode: str
) -> None:
    for model in ("claude-test", "deepseek-test", "llama-test"):
        provider_server.script(model, delay=0.1)
    result = await convene(harness, mode=mode)

    assert result.deferred and result.ephemeral
    [thread] = harness.threads
    assert result.content == f"Council #1 is convened in <#{thread.id}>."
    assert thread.name == TOPIC and thread.parent_id == harness.channel.id
    [starter] = harness.posts_in(harness.channel.id, kinds=("channel",))
    embed = starter.embeds[0]
    assert embed["title"] == f"Council #1: {TOPIC}"
    fields = {field["name"]: field["value"] for field in embed["fields"]}
    assert "**DeepSeek** — the Philosopher" in fields["Members"] and fields["Mode"] == mode
    assert fields["Convened by"] == harness.members["convener"].mention
    # The starter keeps the council's progress; at the end: its last round, its state and what it used.
    council = await repo.get_council(harness.bot.db, 1)
    assert council is not None
    assert fields["Round"] == "2 of 2" and fields["Speaking"] == "concluded"
    assert fields["Tokens so far"].startswith(f"{council.tokens_in:,} in · {council.tokens_out:,} out · ≈ $")
    # Edits are paced (Discord rate-limits them per channel): the first turn's, then the closing one.
    assert len(starter.edits) <= 3
    assert all(e.via == "channel" and e.embeds for e in starter.edits)

    assert member_posts(harness, thread.id) == [
        ("Claude", "claude-test reply #1"),
        ("DeepSeek", "deepseek-test reply #1"),
        ("Llama", "llama-test reply #1"),
        ("Claude", "claude-test reply #2"),
        ("DeepSeek", "deepseek-test reply #2"),
        ("Llama", "llama-test reply #2"),
    ]
    webhook_posts = harness.posts_in(thread.id, kinds=("webhook",))
    assert {p.avatar_url for p in webhook_posts if p.author_name == "Claude"} == {"https://example.org/claude.png"}
    assert all(p.allowed_mentions == {"parse": []} for p in webhook_posts)
    closing = harness.posts_in(thread.id, kinds=("channel",))[-1]
    assert closing.embeds[0]["title"] == "Council concluded"
    assert not thread.archived
    assert harness.webhook_creations == {harness.channel.id: 1}
    if mode == "parallel":
        assert provider_server.max_in_flight == 3


async def test_the_channel_webhook_is_created_once_and_reused(harness: DiscordHarness) -> None:
    await convene(harness, rounds=1, members="Llama")
    await convene(harness, rounds=1, members="Claude", topic="A second question")
    assert harness.webhook_creations == {harness.channel.id: 1}
    assert len(harness.threads) == 2


async def test_a_human_in_the_thread_reaches_the_next_members_prompt(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    provider_server.script("claude-test", delay=0.4)
    await convene(harness, rounds=1, wait=False)
    [thread] = harness.threads
    await wait_for(lambda: provider_server.in_flight == 1)  # Claude is thinking
    await harness.say(harness.members["user"], thread, "Have you considered the bus routes?", wait_background=False)
    await harness.settle()

    name = harness.members["user"].display_name
    claude, deepseek, llama = (r.json for r in provider_server.requests)
    line = f'<human name="{name}">\nHave you considered the bus routes?\n</human>'
    assert not any(line in m["content"] for m in claude["messages"])
    assert any(line in m["content"] for m in deepseek["messages"])
    assert any(line in m["content"] for m in llama["messages"])
    assert [author for author, _ in member_posts(harness, thread.id)] == ["Claude", "DeepSeek", "Llama"]


async def test_only_the_convener_or_thread_managers_steer_a_council(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    provider_server.script("claude-test", delay=0.3)
    await convene(harness, rounds=1, wait=False)
    [thread] = harness.threads
    await wait_for(lambda: provider_server.in_flight == 1)  # Claude is thinking

    refused = await harness.slash(harness.members["user"], "council", "pause", channel=thread)
    assert refused.ephemeral and "Only the member who convened this council" in refused.content
    council = await repo.get_council(harness.bot.db, 1)
    assert council is not None and council.state == "running"

    paused = await harness.slash(
        harness.members["moderator"], "council", "pause", channel=thread, wait_background=False
    )
    assert "paused the council" in paused.content and not paused.ephemeral
    await asyncio.sleep(0.6)  # Claude's turn ends; a paused council asks nobody else
    assert [r.model for r in provider_server.requests] == ["claude-test"]

    again = await harness.slash(harness.members["moderator"], "council", "pause", channel=thread, wait_background=False)
    assert again.ephemeral and "only a running council can pause" in again.content

    resumed = await harness.slash(
        harness.members["convener"], "council", "resume", channel=thread, wait_background=False
    )
    assert "resumed the council" in resumed.content
    await harness.settle()
    assert [author for author, _ in member_posts(harness, thread.id)] == ["Claude", "DeepSeek", "Llama"]


@both_transports
async def test_conclude_ends_the_council_and_keeps_the_thread(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    provider_server.script("deepseek-test", delay=3)
    await convene(harness, rounds=3, wait=False)
    [thread] = harness.threads
    await wait_for(lambda: len(provider_server.requests) == 2 and provider_server.in_flight == 1)  # DeepSeek thinks

    refused = await harness.slash(harness.members["user"], "council", "conclude", channel=thread)
    assert refused.ephemeral and "Only the member who convened" in refused.content

    done = await harness.slash(harness.members["convener"], "council", "conclude", channel=thread)
    assert done.ephemeral and done.content == "Council #1 is concluded."
    assert member_posts(harness, thread.id) == [("Claude", "claude-test reply #1")]
    closing = harness.posts_in(thread.id, kinds=("channel",))[-1].embeds[0]
    assert closing["title"] == "Council concluded"
    assert closing["description"] == f"Concluded by {harness.members['convener'].display_name}."
    assert not thread.archived and not thread.locked
    status = await harness.slash(harness.members["user"], "council", "status", channel=thread)
    fields = {f["name"]: f["value"] for f in status.embeds[0]["fields"]}
    assert fields["State"] == "concluded"


async def test_status_shows_state_round_members_and_tokens(harness: DiscordHarness) -> None:
    await convene(harness, rounds=1)
    [thread] = harness.threads
    in_thread = await harness.slash(harness.members["user"], "council", "status", channel=thread)
    by_id = await harness.slash(harness.members["user"], "council", "status", council_id=1)
    assert in_thread.embeds == by_id.embeds and in_thread.ephemeral
    fields = {f["name"]: f["value"] for f in in_thread.embeds[0]["fields"]}
    assert fields["State"] == "concluded" and fields["Round"] == "1 of 1"
    assert "**Llama** — the Realist · `llama-test`" in fields["Members"]
    assert fields["Tokens"].split(" in")[0].replace(",", "").isdigit()
    assert "9 out" in fields["Tokens"]
    assert fields["Messages"] == "3 from members, 0 from humans"

    missing = await harness.slash(harness.members["user"], "council", "status", council_id=99)
    assert missing.ephemeral and "There is no council #99" in missing.content
    outside = await harness.slash(harness.members["user"], "council", "status")
    assert outside.ephemeral and "inside a council's thread" in outside.content


async def test_convening_a_member_without_its_key_is_refused_and_changes_nothing(harness: DiscordHarness) -> None:
    result = await convene(harness, members="Claude, Gemini")
    assert result.ephemeral and not result.deferred
    assert "Gemini needs TEST_MISSING_KEY" in result.content
    assert harness.threads == [] and harness.posts_in(harness.channel.id, kinds=("channel",)) == []
    assert await repo.list_councils_in_state(harness.bot.db, ("starting", "running", "failed")) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"members": "Claude, Nobody"}, "There is no member called 'Nobody'"),
        ({"roles": "Claude Philosopher"}, "Write roles as `Member=Role"),
        ({"members": "Claude, Claude"}, "Claude is named twice"),
    ],
)
async def test_bad_convene_input_gets_a_private_reason(
    harness: DiscordHarness, options: dict[str, str], message: str
) -> None:
    result = await convene(harness, **options)
    assert result.ephemeral and message in result.content
    assert harness.threads == []


async def test_missing_bot_permissions_are_named_before_anything_is_created(harness: DiscordHarness) -> None:
    app_permissions = discord.Permissions(send_messages=True, embed_links=True, read_message_history=True)
    result = await convene(harness, app_permissions=app_permissions)
    assert result.ephemeral
    assert "Create Public Threads, Send Messages in Threads, Manage Webhooks" in result.content
    assert harness.threads == [] and harness.webhook_creations == {}


async def test_members_lists_the_catalog_with_key_status(harness: DiscordHarness) -> None:
    result = await harness.slash(harness.members["user"], "council", "members")
    assert result.ephemeral
    fields = {f["name"]: f["value"] for f in result.embeds[0]["fields"]}
    assert "🟢 Claude — the Coordinator" in fields
    assert "key set (TEST_ANTHROPIC_KEY)" in fields["🟢 Claude — the Coordinator"]
    assert "no key needed" in fields["🟢 Llama — the Realist"]
    assert "missing key: set TEST_MISSING_KEY" in fields["⚪ Gemini — the Optimist"]
    assert "sk-" not in str(result.embeds)


async def test_long_replies_are_split_and_ai_text_pings_nobody(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    # Long enough for several messages, short enough for Llama's 1024-token output limit (the fake counts words).
    long_reply = "@everyone listen. " + " ".join(f"Point {i} matters for <@123>." for i in range(200))
    provider_server.script("llama-test", long_reply)
    # Mention tokens would otherwise be held for the moderators (see test_governance_e2e).
    admin = discord.Permissions(manage_guild=True, manage_messages=True)
    await harness.slash(
        harness.members["moderator"],
        "governance",
        "category",
        category="mass_notification",
        enabled=False,
        permissions=admin,
    )
    await convene(harness, members="Llama", rounds=1)
    [thread] = harness.threads
    posts = harness.posts_in(thread.id, kinds=("webhook",))
    assert len(posts) > 1 and all(len(p.content) <= 2000 for p in posts)
    assert " ".join(p.content for p in posts).split() == long_reply.split()
    assert all(not p.pings.users and not p.pings.roles and not p.pings.everyone for p in posts)
    lines = await repo.transcript(harness.bot.db, 1)
    assert lines[0].content == long_reply and len(lines[0].discord_ids) == len(posts)


async def test_a_failing_provider_is_noted_in_the_thread_without_secrets(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    secret = TEST_KEYS["TEST_ANTHROPIC_KEY"]
    provider_server.script("claude-test", status=401, message=f"invalid x-api-key {secret}")
    await convene(harness, members="Claude, Llama", rounds=1)
    [thread] = harness.threads
    notices = [p.content for p in harness.posts_in(thread.id, kinds=("channel",)) if p.content]
    assert any("Claude could not answer in round 1" in n for n in notices)
    assert not any(secret in n for n in notices)
    assert member_posts(harness, thread.id) == [("Llama", "llama-test reply #1")]


async def test_assign_changes_a_role_from_the_next_turn(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    provider_server.script("claude-test", delay=0.3)
    await convene(harness, members="Claude, DeepSeek", rounds=1, wait=False)
    [thread] = harness.threads
    await wait_for(lambda: provider_server.in_flight == 1)
    refused = await harness.slash(
        harness.members["user"], "council", "assign", channel=thread, member="DeepSeek", role="the Skeptic"
    )
    assert refused.ephemeral and "Only the member who convened" in refused.content
    unknown = await harness.slash(
        harness.members["convener"],
        "council",
        "assign",
        channel=thread,
        member="Llama",
        role="x",
        wait_background=False,
    )
    assert unknown.ephemeral and "'Llama' is not a member of this council" in unknown.content
    done = await harness.slash(
        harness.members["convener"],
        "council",
        "assign",
        channel=thread,
        member="deepseek",
        role="the  Skeptic",
        wait_background=False,
    )
    assert not done.ephemeral and "made **DeepSeek** the Skeptic" in done.content
    await harness.settle()
    deepseek = provider_server.requests[1].json
    assert "You are DeepSeek, the Skeptic," in deepseek["messages"][0]["content"]
    ended = await harness.slash(
        harness.members["convener"], "council", "assign", channel=thread, member="DeepSeek", role="late"
    )
    assert ended.ephemeral and "only change while the council is running" in ended.content


async def test_a_restarted_bot_resumes_running_councils_when_ready(
    monkeypatch: pytest.MonkeyPatch,
    sqlite_db: Database,
    catalog: Catalog,
    tmp_path: Path,
    harness: DiscordHarness,
    provider_server: FakeProviderServer,
) -> None:
    provider_server.script("llama-test", delay=0.5)
    await convene(harness, members="Claude, Llama", rounds=1, wait=False)
    [thread] = harness.threads
    await wait_for(lambda: len(provider_server.requests) == 2)  # Claude posted, Llama is thinking
    await harness.bot.get_cog("CouncilCog").engine.shutdown()  # the process dies here
    council = await repo.get_council(sqlite_db, 1)
    assert council is not None and council.state == "running"

    # A new process with the same database: on ready it carries on where the old one stopped.
    await harness.dispatch("ready")
    await harness.settle()
    assert member_posts(harness, thread.id) == [("Claude", "claude-test reply #1"), ("Llama", "llama-test reply #2")]
    assert harness.posts_in(thread.id, kinds=("channel",))[-1].embeds[0]["title"] == "Council concluded"
