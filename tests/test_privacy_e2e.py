"""Who may read a council, through Discord: only someone who can see its thread (and its channel). To anyone
else it does not exist: `/council status`, `info`, `usage`, `export` and "Message details" answer as for a
council that never was, `/council history`, `template list` and `scoreboard` leave it out. A moderator's
private note and the reasons moderators give stay out of everyone's export but a moderator's."""

from __future__ import annotations

import json
from typing import Any

import discord
import pytest

from storage import repository as repo
from storage.models import Council
from tests.council_helpers import convene, member_posts, wait_for
from tests.fakes.provider_server import FakeProviderServer
from tests.harness import BOT_PERMISSIONS, DiscordHarness, InteractionResult
from tests.test_governance_e2e import INJECTION, escalations, setup_governance
from tests.test_ratings_storage import rate
from tests.test_templates_e2e import is_minutes_request, opening

READERS = ("status", "info", "usage", "export")
HIDDEN = discord.PermissionOverwrite(view_channel=False)
SHOWN = discord.PermissionOverwrite(view_channel=True)
REASON = "Private: the member repeated REASON-MARKER-7 from a closed case."


def no_council(number: int) -> str:
    """The one answer for a number never used and for a council the asker may not read."""
    return f"There is no council #{number} in this server."


def staff_room(harness: DiscordHarness) -> tuple[discord.TextChannel, discord.Member]:
    """A staff-only channel: @everyone may not view it, the Staff role (and the bot) may."""
    staff = harness.add_role("Staff")
    channel = harness.add_channel(
        "staff-room",
        overwrites={harness.guild.default_role: HIDDEN, staff: SHOWN, harness.roles["bot"]: SHOWN},
    )
    return channel, harness.add_member("staffer", roles=("Staff",))


def shape(result: InteractionResult, number: int | None = None) -> Any:
    """Everything the asker got, with the council's number taken out."""

    def text(value: str | None) -> str | None:
        return value.replace(f"#{number}", "#N") if value is not None and number is not None else value

    return (
        result.response_type,
        [(post.ephemeral, text(post.content), post.embeds, post.attachments) for post in result.messages],
    )


def everything(result: InteractionResult) -> str:
    parts = []
    for post in result.messages:
        parts += [post.content or "", json.dumps(post.embeds, ensure_ascii=False)]
        parts += [data.decode("utf-8") for data in post.files.values()]
    return "\n".join(parts)


def discord_requests(harness: DiscordHarness, since: int) -> list[str]:
    """The channel and thread requests the bot made to Discord since `since` (an index in the router's log)."""
    return [f"{method} {path}" for method, path in harness.router.log[since:] if path.startswith("/api/v10/channels/")]


def history_numbers(result: InteractionResult) -> list[str]:
    [embed] = result.embeds
    if "description" not in embed or "**" not in embed["description"]:
        return []
    return [line.split("**")[1] for line in embed["description"].splitlines()]


def scoreboard_rows(result: InteractionResult) -> dict[str, list[str]]:
    [embed] = result.embeds
    if "```" not in embed.get("description", ""):
        return {}
    rows = embed["description"].split("```")[1].strip().splitlines()[1:]
    return {row.split()[0]: row.split()[1:] for row in rows}


async def two_councils(harness: DiscordHarness) -> tuple[discord.Thread, discord.Thread, discord.Member]:
    """Council #1 in the staff room, council #2 in the open channel, both concluded."""
    room, staffer = staff_room(harness)
    await convene(harness, channel=room, user=staffer, members="Llama", rounds=1, topic="Staff-only matter")
    await convene(harness, members="Llama", rounds=1, topic="Open matter")
    staff_thread, open_thread = harness.threads
    assert staff_thread.parent_id == room.id and open_thread.parent_id == harness.channel.id
    return staff_thread, open_thread, staffer


async def test_a_staff_only_council_does_not_exist_for_those_who_cannot_see_its_channel(
    harness: DiscordHarness,
) -> None:
    staff_thread, _open_thread, staffer = await two_councils(harness)
    user = harness.members["user"]
    for command in READERS:
        hidden = await harness.slash(user, "council", command, council_id=1)
        missing = await harness.slash(user, "council", command, council_id=999)
        assert hidden.content == no_council(1) and missing.content == no_council(999)
        assert shape(hidden, 1) == shape(missing, 999), command  # nothing tells the two apart
        assert "Staff-only matter" not in everything(hidden)
        # Staff see it, by number and in its thread.
        shown = await harness.slash(staffer, "council", command, council_id=1)
        assert shown.ephemeral and "#1" in everything(shown) and shown.content != no_council(1), command
        inside = await harness.slash(staffer, "council", command, channel=staff_thread)
        assert "#1" in everything(inside), command
        # The open council is there for everyone.
        assert "#2" in everything(await harness.slash(user, "council", command, council_id=2)), command

    # "Message details" on a member's message in the staff thread (by its id): as for any other message.
    [llama_post] = harness.posts_in(staff_thread.id, kinds=("webhook",))
    hidden = await harness.context_menu(user, "Message details", llama_post)
    starter = harness.posts_in(harness.channel.id)[0]
    not_a_council_message = await harness.context_menu(user, "Message details", starter)
    assert shape(hidden) == shape(not_a_council_message) and not hidden.embeds
    shown = await harness.context_menu(staffer, "Message details", llama_post)
    assert shown.embeds and shown.embeds[0]["title"].startswith("Llama")

    # The same inside the thread, without a number: as outside any council's thread.
    inside = await harness.slash(user, "council", "status", channel=staff_thread)
    outside = await harness.slash(user, "council", "status")
    assert shape(inside) == shape(outside)

    # Seeing a channel is not enough: Discord shows its past messages only with Read Message History.
    harness.set_overwrite(harness.channel, user, discord.PermissionOverwrite(read_message_history=False))
    assert (await harness.slash(user, "council", "status", council_id=2)).content == no_council(2)


async def test_history_and_scoreboard_leave_out_councils_one_cannot_see(
    harness: DiscordHarness,
) -> None:
    _staff_thread, _open_thread, staffer = await two_councils(harness)
    user = harness.members["user"]
    db = harness.bot.db  # type: ignore[attr-defined]
    guild_id = harness.guild.id
    await rate(db, 1, 10**6, "Claude", {"Llama": (1, 1, 1)}, guild_id=guild_id)  # the staff council's ratings
    await rate(db, 2, 10**6, "Claude", {"Llama": (5, 5, 5)}, guild_id=guild_id)

    for thread in harness.threads:  # out of discord.py's cache, as ended councils' threads soon are
        harness.archive_thread(thread)
    mark = len(harness.router.log)
    mine = await harness.slash(user, "council", "history")
    assert history_numbers(mine) == ["#2"]
    assert "Staff-only matter" not in everything(mine) and "footer" not in mine.embeds[0]
    assert history_numbers(await harness.slash(staffer, "council", "history")) == ["#2", "#1"]

    # The scoreboard's means and counts are over the councils one can see.
    assert scoreboard_rows(await harness.slash(user, "council", "scoreboard")) == {
        "Llama": ["5.0", "5.0", "5.0", "5.0", "1", "1"]
    }
    assert discord_requests(harness, mark) == []  # decided per channel, from the cache: no request per council
    assert scoreboard_rows(await harness.slash(staffer, "council", "scoreboard")) == {
        "Llama": ["3.0", "3.0", "3.0", "3.0", "2", "2"]
    }

    # Someone who can see nothing of the server's councils gets the empty answers.
    harness.set_overwrite(harness.channel, harness.guild.default_role, HIDDEN)
    assert history_numbers(await harness.slash(user, "council", "history")) == []
    assert scoreboard_rows(await harness.slash(user, "council", "scoreboard")) == {}


async def test_template_sessions_and_their_counts_leave_out_councils_one_cannot_see(harness: DiscordHarness) -> None:
    room, staffer = staff_room(harness)
    await convene(harness, members="Llama", rounds=1, topic="Open session")
    [open_thread] = harness.threads
    await harness.slash(harness.members["convener"], "council", "template", "save", name="Board", channel=open_thread)
    await convene(harness, channel=room, user=staffer, template="Board", topic="Closed session")
    user = harness.members["user"]

    [listed] = (await harness.slash(user, "council", "template", "list")).embeds[0]["fields"]
    assert "0 session(s)" in listed["value"]  # the open council was convened before the template existed
    [listed] = (await harness.slash(staffer, "council", "template", "list")).embeds[0]["fields"]
    assert "1 session(s)" in listed["value"]
    assert history_numbers(await harness.slash(user, "council", "history", template="Board")) == []
    assert history_numbers(await harness.slash(staffer, "council", "history", template="Board")) == ["Session 1 · #2"]


async def test_minutes_of_a_staff_only_session_never_reach_the_members_of_an_open_one(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    def chair(body: dict[str, Any]) -> str:
        if not is_minutes_request(body):
            return "Claude weighs it."
        said = json.dumps(body)
        return "STAFF-MINUTES-9: the closed case." if "Closed session" in said else "Open minutes: all agreed."

    provider_server.script("claude-test", chair)
    room, staffer = staff_room(harness)
    await convene(harness, members="Llama, Claude", rounds=1, topic="Open matter")
    await harness.slash(
        harness.members["convener"], "council", "template", "save", name="Board", channel=harness.threads[0]
    )
    await convene(harness, channel=room, user=staffer, template="Board", topic="Closed session")
    asked = len(provider_server.requests)
    await convene(harness, template="Board", topic="Open session")
    open_turns = [r.json for r in provider_server.requests[asked:] if not is_minutes_request(r.json)]
    assert open_turns and all("STAFF-MINUTES-9" not in json.dumps(body) for body in open_turns)

    asked = len(provider_server.requests)
    await convene(harness, channel=room, user=staffer, template="Board", topic="Closed again")
    staff_turns = [r.json for r in provider_server.requests[asked:] if not is_minutes_request(r.json)]
    assert staff_turns and all("STAFF-MINUTES-9" in opening(body) for body in staff_turns)
    assert all("Open minutes" not in opening(body) for body in staff_turns)  # each channel its own memory


async def test_a_council_in_a_private_thread_is_for_its_members_and_manage_threads(harness: DiscordHarness) -> None:
    convener, user, moderator = harness.members["convener"], harness.members["user"], harness.members["moderator"]
    insider = harness.add_member("insider")
    assert harness.bot.user is not None
    thread = harness.private_thread(
        harness.channel, "Private council", owner=convener, members=(harness.bot.user, insider)
    )
    cog: Any = harness.bot.get_cog("CouncilCog")
    plan = await cog.templates.plan(
        guild_id=harness.guild.id, template=None, topic="A private matter", member_names="Llama", roles=None,
        rounds=1, mode=None,
    )  # fmt: skip
    council: Council = await cog.engine.create(
        plan, guild_id=harness.guild.id, channel_id=harness.channel.id, convener_id=convener.id, convener_name="c"
    )
    await cog.engine.open(council.id, thread.id)
    await wait_for(lambda: len(member_posts(harness, thread.id)) == 1)
    await harness.settle()
    [llama_post] = harness.posts_in(thread.id, kinds=("webhook",))

    async def readers(member: discord.Member) -> tuple[bool, bool, bool]:
        status = await harness.slash(member, "council", "status", council_id=1)
        details = await harness.context_menu(member, "Message details", llama_post)
        history = await harness.slash(member, "council", "history")
        return status.content != no_council(1), bool(details.embeds), history_numbers(history) == ["#1"]

    assert await readers(user) == (False, False, False)  # sees the channel, is not in the thread
    assert await readers(insider) == (True, True, True)
    assert await readers(moderator) == (True, True, True)  # Manage Threads sees every private thread
    harness.add_to_thread(thread, user)
    assert await readers(user) == (True, True, True)
    harness.add_to_thread(thread, user, joined=False)

    # In a list, only the private council threads ask Discord who is in them: one request each.
    mark = len(harness.router.log)
    await harness.slash(user, "council", "history")
    assert discord_requests(harness, mark) == [f"GET /api/v10/channels/{thread.id}/thread-members/{user.id}"]

    # Archived, it leaves discord.py's cache: a single council is fetched to learn it is private.
    harness.archive_thread(thread)
    assert harness.guild.get_thread(thread.id) is None
    mark = len(harness.router.log)
    assert (await harness.slash(user, "council", "status", council_id=1)).content == no_council(1)
    assert discord_requests(harness, mark) == [
        f"GET /api/v10/channels/{thread.id}",
        f"GET /api/v10/channels/{thread.id}/thread-members/{user.id}",
    ]
    assert (await harness.slash(insider, "council", "status", council_id=1)).content != no_council(1)

    # The bot taken out of it, without Manage Threads: it cannot tell who is in it, so only those who see
    # every thread there (Manage Threads) still may.
    assert harness.guild.me is not None
    harness.add_to_thread(thread, harness.guild.me, joined=False)
    harness.set_bot_permissions(
        discord.Permissions(BOT_PERMISSIONS.value & ~discord.Permissions(manage_threads=True).value)
    )
    assert (await harness.slash(insider, "council", "status", council_id=1)).content == no_council(1)
    assert (await harness.slash(moderator, "council", "status", council_id=1)).content != no_council(1)


async def test_a_deleted_thread_is_judged_by_its_channel_and_a_deleted_channel_by_manage_server(
    harness: DiscordHarness,
) -> None:
    staff_thread, _open_thread, staffer = await two_councils(harness)
    user = harness.members["user"]
    owner_of_server = harness.add_member("manager", permissions=discord.Permissions(manage_guild=True))

    harness.delete_thread(staff_thread)
    assert (await harness.slash(staffer, "council", "status", council_id=1)).content != no_council(1)
    assert (await harness.slash(user, "council", "status", council_id=1)).content == no_council(1)

    room = harness.guild.get_channel(staff_thread.parent_id or 0)
    assert isinstance(room, discord.TextChannel)
    harness.delete_channel(room)
    for member in (staffer, user):
        assert (await harness.slash(member, "council", "status", council_id=1)).content == no_council(1)
        assert history_numbers(await harness.slash(member, "council", "history")) == ["#2"]
    assert (await harness.slash(owner_of_server, "council", "status", council_id=1)).content != no_council(1)
    assert history_numbers(await harness.slash(owner_of_server, "council", "history")) == ["#2", "#1"]


# -- what an export carries --------------------------------------------------------------------------------


@pytest.mark.parametrize("as_moderator", [False, True], ids=["member", "moderator"])
async def test_a_moderators_private_note_and_reason_are_only_in_a_moderators_export(
    harness: DiscordHarness, provider_server: FakeProviderServer, as_moderator: bool
) -> None:
    mods = await setup_governance(harness)
    provider_server.script("claude-test", INJECTION, once=True)
    await convene(harness, members="Claude, Llama", rounds=1, wait=False)
    [thread] = harness.threads
    await wait_for(lambda: len(escalations(harness, mods)) == 1)
    await harness.settle()
    moderator = harness.members["moderator"]
    opened = await harness.click(moderator, escalations(harness, mods)[0], "esc:1:reason")
    await harness.submit_modal(moderator, opened, {"reason": REASON})
    await harness.settle()
    [private] = [line for line in await repo.transcript(harness.bot.db, 1) if line.visibility == "private"]  # type: ignore[attr-defined]
    assert REASON in private.content  # the member is told why, in its next prompt

    asker = moderator if as_moderator else harness.members["user"]
    result = await harness.slash(asker, "council", "export", channel=thread)
    assert result.response is not None
    markdown = result.response.files["council-1.md"].decode("utf-8")
    record = json.loads(result.response.files["council-1.json"])
    page = result.response.files["council-1.html"].decode("utf-8")
    assert (REASON in page) is as_moderator  # the HTML holds what the other two files hold, for who asks
    decisions = markdown.split("## Moderation decisions", 1)[1]
    [escalation] = record["escalations"]
    decision = next(entry for entry in record["audit"] if entry["kind"] == "decision")
    assert decision["detail"].startswith("rejected escalation #1")
    assert escalation["state"] == "rejected" and escalation["decided_by"] == moderator.display_name
    if as_moderator:
        assert record["moderators_notes"] is True
        assert [m["content"] for m in record["messages"] if m["visibility"] == "private"] == [private.content]
        assert escalation["decision_reason"] == REASON
        assert f"Reason given: {REASON}" in decisions
        assert decision["detail"] == f"rejected escalation #1: {REASON}"
    else:
        assert record["moderators_notes"] is False
        assert not [m for m in record["messages"] if m["visibility"] == "private"]
        assert escalation["decision_reason"] is None and decision["detail"] == "rejected escalation #1"
        assert "Reason given" not in decisions and "only in a moderator's export" in decisions
        assert "REASON-MARKER-7" not in everything(result)
    assert "withheld by the moderators" in markdown  # what the thread showed, for everyone
