"""Reports through Discord: one open escalation per message, later reports join it without a new ping,
and someone reporting message after message is slowed down."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import discord

from bot.council.human_reports import REPORT_WINDOW, REPORTS_PER_WINDOW, HumanReports
from bot.council.moderation import Screened
from bot.governance.concerns import Concern
from storage import governance_repository as gov
from storage import repository as repo
from tests.council_helpers import convene
from tests.fakes.provider_server import FakeProviderServer
from tests.harness import DiscordHarness
from tests.harness.recorder import Post
from tests.test_governance_e2e import escalations, fields, setup_governance

REPORT = "Report to moderators"


def pings(harness: DiscordHarness, mods: discord.TextChannel) -> list[Post]:
    """The messages that pinged the moderators' role when they were sent. (The harness keeps a post as it
    is now; an edit never notifies anyone on Discord, and no edit here changes the mention.)"""
    role = harness.roles["moderator"].id
    posted = harness.posts_in(mods.id, kinds=("channel",))
    assert all(edit.content is None for post in posted for edit in post.edits)
    return [p for p in posted if p.content == f"<@&{role}>"]


def reporters(harness: DiscordHarness, count: int) -> list[discord.Member]:
    return [harness.add_member(f"reporter{n}") for n in range(count)]


async def council_with_posts(harness: DiscordHarness, **convene_options: object) -> tuple[discord.TextChannel, int]:
    mods = await setup_governance(harness, mode="notify")
    await convene(harness, **convene_options)
    [thread] = harness.threads
    return mods, thread.id


async def test_one_message_reported_by_three_people_is_one_escalation_with_one_ping_and_three_reporters(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    mods, thread_id = await council_with_posts(harness, members="Llama", rounds=1)
    [llama_post] = harness.posts_in(thread_id, kinds=("webhook",))
    ann, bob, cy = reporters(harness, 3)

    first = await harness.context_menu(ann, REPORT, llama_post)
    assert first.ephemeral and "The moderators have it as escalation #1." in first.content
    [pinged] = escalations(harness, mods)
    assert pinged.pings.roles == (harness.roles["moderator"].id,)  # the first report pings the role
    second = await harness.context_menu(bob, REPORT, llama_post)
    third = await harness.context_menu(cy, REPORT, llama_post)
    assert second.ephemeral and "already have this message as escalation #1" in second.content
    assert "(3 report(s))" in third.content
    again = await harness.context_menu(bob, REPORT, llama_post)
    assert again.ephemeral and "You have reported this message already" in again.content

    [escalation] = escalations(harness, mods)
    assert pings(harness, mods) == [escalation]  # the later ones did not ping again
    names = ", ".join(member.display_name for member in (ann, bob, cy))
    assert fields(escalation)["Reported by"] == f"3 people: {names}"  # the embed was edited, not posted again
    assert len(escalation.edits) == 2
    stored = await gov.get_escalation(harness.bot.db, 1)
    assert stored is not None and stored.report_count == 3 and stored.state == "pending"
    for member in (ann, bob, cy):
        assert await gov.has_reported(harness.bot.db, 1, member.id)
    kinds = [entry.kind for entry in await gov.list_audit(harness.bot.db, harness.guild.id)]
    assert kinds.count("concern") == 1 and kinds.count("report") == 2

    # Once decided, the count stays on the closed escalation.
    await harness.click(harness.members["moderator"], escalation, "esc:1:approve")
    assert fields(escalations(harness, mods)[0])["Reported by"] == f"3 people: {names}"


async def test_every_part_of_a_split_reply_and_an_unstored_message_count_as_one_message(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    provider_server.script("llama-test", ("A long thought. " * 200).strip())  # over 2,000 characters: two posts
    mods, thread_id = await council_with_posts(harness, members="Llama", rounds=1)
    parts = harness.posts_in(thread_id, kinds=("webhook",))
    assert len(parts) == 2
    closing = next(p for p in harness.posts_in(thread_id, kinds=("channel",)) if p.embeds)  # never a stored line
    ann, bob = reporters(harness, 2)
    await harness.context_menu(ann, REPORT, parts[0])
    joined = await harness.context_menu(bob, REPORT, parts[1])
    assert "already have this message as escalation #1" in joined.content
    await harness.context_menu(ann, REPORT, closing)
    joined = await harness.context_menu(bob, REPORT, closing)
    assert "already have this message as escalation #2" in joined.content
    assert len(escalations(harness, mods)) == 2 and len(pings(harness, mods)) == 2


async def test_reports_at_the_same_moment_still_make_one_escalation(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    mods, thread_id = await council_with_posts(harness, members="Llama", rounds=1)
    [llama_post] = harness.posts_in(thread_id, kinds=("webhook",))
    people = reporters(harness, 4)

    answers = await asyncio.gather(*(harness.context_menu(member, REPORT, llama_post) for member in people))

    assert all(answer.ephemeral and "escalation #1" in answer.content for answer in answers)
    assert sum("The moderators have it as escalation #1." in answer.content for answer in answers) == 1
    assert len(escalations(harness, mods)) == 1 and len(pings(harness, mods)) == 1
    stored = await gov.get_escalation(harness.bot.db, 1)
    assert stored is not None and stored.report_count == 4
    assert [item.id for item in await gov.list_pending_escalations(harness.bot.db)] == [1]
    assert fields(escalations(harness, mods)[0])["Reported by"].startswith("4 people: ")


async def test_someone_reporting_message_after_message_is_slowed_down_and_nothing_is_recorded(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    mods, thread_id = await council_with_posts(harness, rounds=2)  # three members, two rounds: six replies
    posts = harness.posts_in(thread_id, kinds=("webhook",))
    assert len(posts) == REPORTS_PER_WINDOW + 1
    fast, other = reporters(harness, 2)

    for post in posts[:REPORTS_PER_WINDOW]:
        taken = await harness.context_menu(fast, REPORT, post)
        assert "The moderators have it as escalation" in taken.content
    audit_before = len(await gov.list_audit(harness.bot.db, harness.guild.id))
    refused = await harness.context_menu(fast, REPORT, posts[-1])

    assert refused.ephemeral
    assert f"You have reported {REPORTS_PER_WINDOW} messages in the last 10 minutes" in refused.content
    assert "Please wait about 10 minute(s)" in refused.content and "was not recorded" in refused.content
    assert len(escalations(harness, mods)) == REPORTS_PER_WINDOW and len(pings(harness, mods)) == REPORTS_PER_WINDOW
    assert len(await gov.list_audit(harness.bot.db, harness.guild.id)) == audit_before
    assert len(await gov.list_pending_escalations(harness.bot.db)) == REPORTS_PER_WINDOW
    # A message they reported already is answered as such; the limit is theirs alone, so others still report.
    assert "You have reported this message already" in (await harness.context_menu(fast, REPORT, posts[0])).content
    taken = await harness.context_menu(other, REPORT, posts[-1])
    assert f"escalation #{REPORTS_PER_WINDOW + 1}" in taken.content


async def test_the_pace_is_counted_over_the_last_ten_minutes(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    _mods, thread_id = await council_with_posts(harness, rounds=2)
    posts = harness.posts_in(thread_id, kinds=("webhook",))
    engine = harness.bot.get_cog("CouncilCog").engine  # type: ignore[attr-defined]
    reports = HumanReports(engine.moderation)
    fast = reporters(harness, 1)[0]
    start = datetime.now(UTC)

    async def report(post: Post, minutes: float) -> str:
        try:
            outcome = await reports.report(
                thread_id=thread_id,
                discord_message_id=post.message_id,
                author_name=post.author_name,
                content=post.content or "",
                reporter_id=fast.id,
                reporter_name=fast.display_name,
                now=start + timedelta(minutes=minutes),
            )
        except Exception as error:  # the refusal, shown to the reporter as is
            return str(error)
        return f"#{outcome.escalation.id}"

    assert [await report(post, 0) for post in posts[:REPORTS_PER_WINDOW]] == ["#1", "#2", "#3", "#4", "#5"]
    assert "Please wait about 4 minute(s)" in await report(posts[-1], REPORT_WINDOW.total_seconds() / 60 - 3.5)
    assert await report(posts[-1], REPORT_WINDOW.total_seconds() / 60 + 1) == "#6"


async def test_a_concern_about_a_reply_already_reported_joins_its_escalation_and_still_holds(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    # A streamed reply can be reported before its checks end; when they find a concern, the open
    # escalation stands for it (no second one, no second ping) and the policy still holds the reply.
    mods, thread_id = await council_with_posts(harness, members="Llama", rounds=1)
    [llama_post] = harness.posts_in(thread_id, kinds=("webhook",))
    await harness.context_menu(reporters(harness, 1)[0], REPORT, llama_post)
    engine = harness.bot.get_cog("CouncilCog").engine  # type: ignore[attr-defined]
    await gov.update_guild_settings(harness.bot.db, harness.guild.id, policy_mode="hold")
    engine.moderation.gate.forget(harness.guild.id)
    council = await repo.get_council(harness.bot.db, 1)
    line = next(line for line in await repo.transcript(harness.bot.db, 1) if line.author_kind == "ai")
    policy = await engine.moderation.gate.policy(harness.guild.id)
    screened = Screened(line.content, [Concern("rule", "governance", "A rule matched.")], policy)

    await engine.moderation.raise_concerns(council, line, screened, author_name="Llama", content=line.content)
    await harness.settle()

    assert [item.id for item in await gov.list_pending_escalations(harness.bot.db)] == [1]
    assert len(escalations(harness, mods)) == 1 and len(pings(harness, mods)) == 1
    notices = [p.content for p in harness.posts_in(thread_id, kinds=("channel",)) if p.content]
    assert any("A message from Llama awaits moderator review" in notice for notice in notices)


async def test_who_reported_a_message_is_only_in_a_moderators_export(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    _, thread_id = await council_with_posts(harness, members="Llama", rounds=1)
    [llama_post] = harness.posts_in(thread_id, kinds=("webhook",))
    ann, bob = reporters(harness, 2)
    await harness.context_menu(ann, REPORT, llama_post)
    await harness.context_menu(bob, REPORT, llama_post)
    thread = harness.bot.get_channel(thread_id)

    def exported(result: object) -> str:
        files = result.response.files  # type: ignore[attr-defined]
        return files["council-1.md"].decode() + files["council-1.json"].decode()

    everyone = exported(await harness.slash(harness.members["user"], "council", "export", channel=thread))
    for member in (ann, bob):
        assert member.display_name not in everyone and str(member.id) not in everyone
    assert "Reported by a member of the server" in everyone
    moderators = exported(
        await harness.slash(
            harness.members["moderator"],
            "council",
            "export",
            channel=thread,
            permissions=discord.Permissions(manage_guild=True, view_channel=True, read_message_history=True),
        )
    )
    assert ann.display_name in moderators and bob.display_name in moderators and str(ann.id) in moderators
