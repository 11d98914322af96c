"""Council templates through Discord: save in a thread, list, convene from, delete; the minutes and memory of
permanent councils; /council history."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import discord
import pytest

from bot.catalog import Catalog
from bot.council.memory import MINUTES_HEADING, MINUTES_INSTRUCTION
from storage import repository as repo
from storage import template_repository as templates_repo
from storage.database import Database
from tests.council_helpers import TOPIC, convene, make_bot, member_posts, wait_for
from tests.fakes.provider_server import FakeProviderServer, estimate_input_tokens
from tests.harness import DiscordHarness, InteractionResult

MINUTES = "Agreed: two lots become parks this year. Open: who pays for their upkeep (MINUTES-MARKER-7)."


def is_minutes_request(body: dict[str, Any]) -> bool:
    return MINUTES_INSTRUCTION in body["messages"][-1]["content"]


def opening(body: dict[str, Any]) -> str:
    """The first user turn (OpenAI-format bodies carry the system prompt as their first message)."""
    return next(m["content"] for m in body["messages"] if m["role"] == "user")


def chair_writes(minutes: str) -> Any:
    """Claude's replies: the minutes when asked for them, else a turn of its own."""
    return lambda body: minutes if is_minutes_request(body) else "Claude weighs the parking question."


async def save(harness: DiscordHarness, thread: discord.Thread, name: str, **options: Any) -> InteractionResult:
    user = options.pop("user", harness.members["convener"])
    return await harness.slash(user, "council", "template", "save", channel=thread, name=name, **options)


async def convene_template(harness: DiscordHarness, template: str, **options: Any) -> InteractionResult:
    user = options.pop("user", harness.members["convener"])
    options.setdefault("topic", TOPIC)
    return await harness.slash(user, "council", "convene", template=template, **options)


def seats_of(harness: DiscordHarness, council_id: int) -> Any:
    return harness.bot.get_cog("CouncilCog").engine.seats(council_id)  # type: ignore[attr-defined]


def texts(result: InteractionResult) -> str:
    return result.content or ""


async def test_a_template_saved_in_a_thread_is_listed_and_convenes_the_same_council(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    await convene(harness, members="DeepSeek, Llama", roles="DeepSeek=the Skeptic", rounds=1, mode="parallel")
    [thread] = harness.threads

    saved = await save(harness, thread, "  Weekly   Review ")
    assert saved.ephemeral
    assert (
        "Saved the template **Weekly Review**: DeepSeek (the Skeptic), Llama (the Realist) · parallel · 1 round(s)"
        in (texts(saved))
    )
    listed = await harness.slash(harness.members["user"], "council", "template", "list")
    assert listed.ephemeral
    [field] = listed.embeds[0]["fields"]
    assert field["name"] == "Weekly Review"
    assert field["value"].startswith(
        "DeepSeek (the Skeptic), Llama (the Realist)\nparallel · 1 round(s) · 0 session(s)"
    )
    choices = await harness.autocomplete(
        harness.members["user"], "council", "convene", focused="template", value="week", topic=TOPIC
    )
    assert choices == [{"name": "Weekly Review", "value": "Weekly Review"}]
    assert (
        await harness.autocomplete(harness.members["user"], "council", "history", focused="template", value="x") == []
    )

    result = await convene_template(harness, "weekly review")  # any case
    assert result.ephemeral and "Council #2 is convened" in texts(result)
    council = await repo.get_council(harness.bot.db, 2)
    assert council is not None and (council.mode, council.rounds, council.state) == ("parallel", 1, "concluded")
    stored = await templates_repo.get_template(harness.bot.db, council.guild_id, "Weekly Review")
    assert stored is not None and council.template_id == stored.template.id and stored.sessions == 1
    assert [(seat.name, seat.role) for seat in await seats_of(harness, 2)] == [
        ("DeepSeek", "the Skeptic"),
        ("Llama", "the Realist"),
    ]
    new_thread = harness.threads[1]
    starter = harness.posts_in(harness.channel.id, kinds=("channel",))[-1]
    # The starter names the template as it was saved (it was convened as typed, in another case).
    assert {"name": "Template", "value": "Weekly Review", "inline": True} in starter.embeds[0]["fields"]
    assert [author for author, _ in member_posts(harness, new_thread.id)][:2] == ["DeepSeek", "Llama"]


async def test_options_given_with_a_template_override_its_own(harness: DiscordHarness) -> None:
    await convene(harness, members="Claude, DeepSeek, Llama", roles="Llama=the Doubter", rounds=1)
    [thread] = harness.threads
    await save(harness, thread, "Trio")

    await convene_template(harness, "Trio", members="Llama, DeepSeek", roles="DeepSeek=the Judge", rounds=2)
    assert [(seat.name, seat.role) for seat in await seats_of(harness, 2)] == [
        ("Llama", "the Doubter"),  # the template's role for a member it seats
        ("DeepSeek", "the Judge"),  # given explicitly
    ]
    council = await repo.get_council(harness.bot.db, 2)
    assert council is not None and council.rounds == 2 and council.mode == "round-robin"


async def test_bad_names_and_taken_names_are_refused_and_change_nothing(harness: DiscordHarness) -> None:
    await convene(harness, members="Llama", rounds=1)
    [thread] = harness.threads
    for bad, why in [
        ("x" * 51, "1 to 50 visible characters"),
        ("   ", "1 to 50 visible characters"),
        ("\u200b\u200b", "1 to 50 visible characters"),
        ("week\x07ly", "may not contain control characters"),
        ("two\nlines", "may not contain control characters"),
    ]:
        refused = await save(harness, thread, bad)
        assert refused.ephemeral and why in texts(refused), bad
    outside = await harness.slash(harness.members["convener"], "council", "template", "save", name="Fine")
    assert outside.ephemeral and "inside a council's thread" in texts(outside)
    assert await templates_repo.list_templates(harness.bot.db, harness.guild.id) == []

    await save(harness, thread, "Solo")
    await convene(harness, members="DeepSeek", rounds=1)
    other_thread = harness.threads[1]
    taken = await save(harness, other_thread, "SOLO")
    assert taken.ephemeral and "already a template called 'Solo'" in texts(taken) and "replace:true" in texts(taken)
    not_theirs = await save(harness, other_thread, "solo", replace=True, user=harness.members["user"])
    assert not_theirs.ephemeral and "Only the template's creator or someone with Manage Server" in texts(not_theirs)
    [kept] = await templates_repo.list_templates(harness.bot.db, harness.guild.id)
    assert [m.name for m in kept.members] == ["Llama"]

    replaced = await save(harness, other_thread, "solo", replace=True)
    assert replaced.ephemeral and "Replaced the template **solo**: DeepSeek" in texts(replaced)
    [now] = await templates_repo.list_templates(harness.bot.db, harness.guild.id)
    assert now.template.id == kept.template.id and [m.name for m in now.members] == ["DeepSeek"]


async def test_only_the_creator_or_manage_server_may_delete_a_template(harness: DiscordHarness) -> None:
    await convene(harness, members="Llama", rounds=1)
    [thread] = harness.threads
    await save(harness, thread, "Mine")
    await convene_template(harness, "Mine")
    manager = harness.add_member("manager", permissions=discord.Permissions(manage_guild=True))

    for who in ("user", "moderator"):  # Manage Threads is not enough
        refused = await harness.slash(harness.members[who], "council", "template", "delete", name="Mine")
        assert refused.ephemeral and "Only the template's creator or someone with Manage Server" in texts(refused)
    choices = await harness.autocomplete(manager, "council", "template", "delete", focused="name", value="mi")
    assert choices == [{"name": "Mine", "value": "Mine"}]
    deleted = await harness.slash(manager, "council", "template", "delete", name="mine")
    assert deleted.ephemeral and "Deleted the template **Mine**. Its 1 council(s) and their threads stay." in texts(
        deleted
    )
    council = await repo.get_council(harness.bot.db, 2)
    assert council is not None and council.template_id is None

    gone = await harness.slash(harness.members["convener"], "council", "template", "delete", name="Mine")
    assert gone.ephemeral and "There is no template called 'Mine'" in texts(gone)
    convened = await convene_template(harness, "Mine")
    assert convened.ephemeral and "There is no template called 'Mine'" in texts(convened)
    assert len(harness.threads) == 2

    await save(harness, thread, "Theirs")
    own = await harness.slash(harness.members["convener"], "council", "template", "delete", name="Theirs")
    assert own.ephemeral and "Deleted the template" in texts(own)


async def test_convening_needs_members_or_a_template_whose_members_are_available(
    harness: DiscordHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    neither = await harness.slash(harness.members["convener"], "council", "convene", topic=TOPIC)
    assert neither.ephemeral and "Name the members" in texts(neither) and "or a template" in texts(neither)

    await convene(harness, members="Claude, Llama", rounds=1)
    [thread] = harness.threads
    await save(harness, thread, "Pair")
    monkeypatch.delenv("TEST_ANTHROPIC_KEY")
    refused = await convene_template(harness, "Pair")
    assert refused.ephemeral and "Template 'Pair': Not available: Claude needs TEST_ANTHROPIC_KEY" in texts(refused)

    await templates_repo.save_template(
        harness.bot.db,
        guild_id=harness.guild.id,
        name="Ghosts",
        mode="round-robin",
        rounds=1,
        members=[("Llama", None), ("Casper", "the Ghost")],  # Casper has left the catalog since
        created_by_id=1,
        created_by_name="Ada",
    )
    ghost = await convene_template(harness, "Ghosts")
    assert ghost.ephemeral and "Template 'Ghosts': There is no member called 'Casper'" in texts(ghost)
    assert len(harness.threads) == 1 and await repo.count_active_councils(harness.bot.db, harness.guild.id) == 0


async def test_a_session_ends_with_minutes_and_the_next_session_recalls_them(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    provider_server.script("claude-test", chair_writes(MINUTES))
    long_turn = " ".join(f"Argument {i} about parks and parking deserves weighing." for i in range(40))
    provider_server.script("llama-test", long_turn)
    await convene(harness, members="Llama, Claude", rounds=1)
    [first_thread] = harness.threads
    await save(harness, first_thread, "Parks Board")
    # The council saved was not a session of the template: it has no minutes.
    assert all(MINUTES_HEADING not in content for _, content in member_posts(harness, first_thread.id))

    await convene_template(harness, "Parks Board", rounds=2)
    second_thread = harness.threads[1]
    posts = harness.posts_in(second_thread.id)
    minutes_posts = [p for p in posts if p.content and p.content.startswith(MINUTES_HEADING)]
    assert len(minutes_posts) == 1 and minutes_posts[0].author_name == "Claude"  # the coordinator chairs
    assert minutes_posts[0].content == f"{MINUTES_HEADING}\n{MINUTES}"
    assert minutes_posts[0].allowed_mentions == {"parse": []}
    assert posts[-1].embeds[0]["title"] == "Council concluded"  # the minutes come before the closing embed
    assert posts.index(minutes_posts[0]) == len(posts) - 2
    stored = await repo.get_message_by_turn(harness.bot.db, 2, templates_repo.MINUTES_TURN_KEY)
    assert stored is not None and stored.author_name == "Claude" and stored.discord_ids
    asked = [r.json for r in provider_server.requests if is_minutes_request(r.json)]
    assert len(asked) == 1 and "Argument 3 about parks" in "\n".join(m["content"] for m in asked[0]["messages"])

    first_session = len(provider_server.requests)
    await convene_template(harness, "Parks Board", topic="What about the bus depot?")
    council = await repo.get_council(harness.bot.db, 3)
    assert council is not None and council.ended_at is not None
    second = [r.json for r in provider_server.requests[first_session:]]
    turns = [body for body in second if not is_minutes_request(body)]
    assert [body["model"] for body in turns] == ["llama-test", "claude-test"]  # the template keeps 1 round
    session_date = (await repo.get_council(harness.bot.db, 2)).ended_at  # type: ignore[union-attr]
    for body in turns:
        first = opening(body)
        assert "This council has met before" in first and MINUTES in first
        assert f"Session of {session_date:%Y-%m-%d} (council #2" in first
    for body in second:
        assert estimate_input_tokens(body) <= 6000
    # The third session's own minutes were taken, so the template remembers two sessions now.
    third_minutes = await repo.get_message_by_turn(harness.bot.db, 3, templates_repo.MINUTES_TURN_KEY)
    assert third_minutes is not None and third_minutes.discord_ids


async def test_a_chair_that_cannot_write_the_minutes_leaves_none_and_says_so(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    await convene(harness, members="Llama, DeepSeek", rounds=1)
    [thread] = harness.threads
    await save(harness, thread, "No Coordinator")
    provider_server.script("llama-test", status=500, message="upstream exploded")  # Llama chairs: first seat

    await convene_template(harness, "No Coordinator")
    session_thread = harness.threads[1]
    notices = [p.content for p in harness.posts_in(session_thread.id, kinds=("channel",)) if p.content]
    assert any(n.startswith("📜 No minutes for this session: Llama could not write them") for n in notices)
    council = await repo.get_council(harness.bot.db, 2)
    assert council is not None and council.state == "concluded"
    assert harness.posts_in(session_thread.id, kinds=("channel",))[-1].embeds[0]["title"] == "Council concluded"

    provider_server.script("llama-test")
    before = len(provider_server.requests)
    await convene_template(harness, "No Coordinator")
    assert all("met before" not in opening(r.json) for r in provider_server.requests[before:])


async def test_minutes_are_shown_once_when_the_bot_restarts_between_posting_and_recording(
    harness: DiscordHarness,
    provider_server: FakeProviderServer,
    sqlite_db: Database,
    catalog: Catalog,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider_server.script("claude-test", chair_writes(MINUTES))
    await convene(harness, members="Claude", rounds=1)
    await save(harness, harness.threads[0], "Solo")
    original_record = repo.record_posted
    died = False

    async def die_before_recording_minutes(db: Database, message_id: int, ids: list[int]) -> None:
        nonlocal died
        message = await repo.get_message(db, message_id)
        if died or message is None or message.turn_key != templates_repo.MINUTES_TURN_KEY:
            await original_record(db, message_id, ids)
            return
        died = True
        await asyncio.Event().wait()  # the process stops here: the minutes are shown, never recorded

    monkeypatch.setattr(repo, "record_posted", die_before_recording_minutes)
    await convene_template(harness, "Solo", wait_background=False)
    await wait_for(lambda: died)
    thread = harness.threads[1]

    def shown_minutes() -> list[str]:
        return [c for _, c in member_posts(harness, thread.id) if c.startswith(MINUTES_HEADING)]

    assert len(shown_minutes()) == 1
    for _ in range(2):  # a restart finishes the minutes; the next one finds nothing left to do
        waiting_for_people = harness.ignore_task
        harness.ignore_task = lambda task: True
        await harness.restart(make_bot(sqlite_db, catalog, tmp_path))
        harness.ignore_task = waiting_for_people
        await harness.dispatch("ready")
        await harness.settle()
        assert shown_minutes() == [f"{MINUTES_HEADING}\n{MINUTES}"]
    assert sum(is_minutes_request(r.json) for r in provider_server.requests) == 1
    stored = await repo.get_message_by_turn(sqlite_db, 2, templates_repo.MINUTES_TURN_KEY)
    assert stored is not None and stored.discord_ids and stored.posted_at is not None


async def test_history_lists_sessions_newest_first_with_links_to_their_threads(harness: DiscordHarness) -> None:
    await convene(harness, members="Llama", rounds=1, topic="Plain council [with brackets]")
    await save(harness, harness.threads[0], "Board")
    await convene_template(harness, "Board", topic="First session")
    await convene_template(harness, "Board", topic="Second session")
    guild = harness.guild.id

    board = await harness.slash(harness.members["user"], "council", "history", template="board")
    assert board.ephemeral
    embed = board.embeds[0]
    assert embed["title"] == "Sessions of Board"
    lines = embed["description"].split("\n")
    thread2, thread3 = harness.threads[1].id, harness.threads[2].id
    assert len(lines) == 2
    assert lines[0].startswith("**Session 2 · #3** · ") and " · concluded · " in lines[0]
    assert lines[0].endswith(f"[Second session](https://discord.com/channels/{guild}/{thread3})")
    assert lines[1].endswith(f"[First session](https://discord.com/channels/{guild}/{thread2})")

    everything = await harness.slash(harness.members["user"], "council", "history")
    lines = everything.embeds[0]["description"].split("\n")
    assert [line.split(" · ")[0] for line in lines] == ["**#3**", "**#2**", "**#1**"]
    assert lines[2].endswith(
        f"[Plain council (with brackets)](https://discord.com/channels/{guild}/{harness.threads[0].id})"
    )

    for n in range(20):
        await repo.create_council(
            harness.bot.db,
            guild_id=guild,
            channel_id=harness.channel.id,
            topic=f"Old council {n} " + "x" * 900,
            mode="round-robin",
            rounds=1,
            convener_id=1,
            convener_name="Ada",
            members=[("Llama", None)],
        )
    capped = await harness.slash(harness.members["user"], "council", "history")
    embed = capped.embeds[0]
    assert len(embed["description"].split("\n")) == 15 and embed["footer"]["text"] == "The 15 most recent of 23."
    assert "(no thread)" in embed["description"]

    unknown = await harness.slash(harness.members["user"], "council", "history", template="Nope")
    assert unknown.ephemeral and "There is no template called 'Nope'" in texts(unknown)


async def test_minutes_held_for_review_do_not_say_the_ended_council_waits(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    from tests.test_governance_e2e import escalations, setup_governance

    mods = await setup_governance(harness)  # hold: flagged replies wait for a moderator
    await convene(harness, members="Claude, Llama", rounds=1)
    [thread] = harness.threads
    await save(harness, thread, "Held Minutes")
    provider_server.script("claude-test", chair_writes("Agreed: write to grace.hopper@fastmail.com about upkeep."))

    await convene_template(harness, "Held Minutes")
    session_thread = harness.threads[1]
    notices = [p.content for p in harness.posts_in(session_thread.id, kinds=("channel",)) if p.content]
    held = [n for n in notices if "awaits moderator review" in n]
    assert held == ["🛡️ A message from Claude awaits moderator review. It appears here if they approve it."]
    council = await repo.get_council(harness.bot.db, 2)
    assert council is not None and council.state == "concluded"

    [escalation] = escalations(harness, mods)
    await harness.click(harness.members["moderator"], escalation, "esc:1:approve")
    await harness.settle()
    assert any("grace.hopper@fastmail.com" in content for _, content in member_posts(harness, session_thread.id))
