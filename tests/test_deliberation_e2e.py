"""Deliberation modes, talking to members and steering a council, end to end: slash commands and human
messages in through the Discord harness, thread posts out, providers over loopback HTTP."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import discord
import pytest

from bot.catalog import Catalog
from storage import repository as repo
from storage.database import Database
from tests.council_helpers import convene, start_harness, wait_for
from tests.fakes.provider_server import FakeProviderServer
from tests.harness import DiscordHarness, InteractionResult, limits
from tests.test_engine import prompt_text

MODELS = {"Claude": "claude-test", "DeepSeek": "deepseek-test", "Llama": "llama-test"}
REVIEW_TITLE = "⚖️ Peer review: the answers ranked"


def shown(harness: DiscordHarness, thread_id: int) -> list[tuple[str, str]]:
    """The thread as its readers see it: (who, what), members under their names, the bot as "bot" (its
    embeds by title), humans as "human"."""
    view = []
    for post in harness.posts_in(thread_id):
        if post.kind == "webhook":
            view.append((post.author_name, post.content or ""))
        elif post.kind == "human":
            view.append(("human", post.content or ""))
        else:
            view.append(("bot", post.content or f"[{post.embed_titles[0]}]"))
    return view


def asks_floor(body: dict[str, Any]) -> bool:
    return '{"next"' in prompt_text(body)


def asks_ranking(body: dict[str, Any]) -> bool:
    return "FINAL RANKING" in prompt_text(body)


def addressed(body: dict[str, Any]) -> bool:
    return "addressed you directly" in prompt_text(body)


def turns(server: FakeProviderServer) -> list[tuple[str, dict[str, Any]]]:
    """(model, body) of every member turn, in the order the provider received them."""
    return [(r.model or "", r.json) for r in server.requests if not asks_floor(r.json) and not asks_ranking(r.json)]


def rank_every_response(body: dict[str, Any]) -> str:
    labels = re.findall(r"^Response ([A-Z]):", prompt_text(body), re.MULTILINE)
    return "A few thoughts.\nFINAL RANKING: " + " > ".join(f"Response {label}" for label in labels)


async def council(harness: DiscordHarness, council_id: int = 1) -> Any:
    found = await repo.get_council(harness.bot.db, council_id)
    assert found is not None
    return found


def refused(result: InteractionResult, text: str) -> None:
    assert result.ephemeral and all(post.ephemeral for post in result.messages), result.texts
    assert text in (result.content or ""), result.content


# -- conductor -------------------------------------------------------------------------------------------


async def test_conductor_the_chair_gives_the_floor_and_an_invalid_choice_falls_back_to_seat_order(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    # Llama first, then a member who is not seated (fallback: next in seat order after Llama), then DeepSeek.
    choices = iter(
        [
            {"next": "Llama", "why": "a realist should open"},
            {"next": "Gandalf", "why": "wisdom"},
            {"next": "DeepSeek", "why": "the philosophy is missing"},
        ]
    )
    provider_server.script(
        "claude-test", lambda body: json.dumps(next(choices)) if asks_floor(body) else "Claude: parks, carefully."
    )
    result = await convene(harness, mode="conductor", chair="Claude", rounds=1)
    [thread] = harness.threads
    assert result.content == f"Council #1 is convened in <#{thread.id}>."

    assert shown(harness, thread.id) == [
        ("bot", "🎼 Claude gives the floor to **Llama**: a realist should open"),
        ("Llama", "llama-test reply #1"),
        (
            "bot",
            "🎼 Claude did not give the floor ('Gandalf' is not a member who may speak); **Claude** speaks next in seat order.",
        ),
        ("Claude", "Claude: parks, carefully."),
        ("bot", "🎼 Claude gives the floor to **DeepSeek**: the philosophy is missing"),
        ("DeepSeek", "deepseek-test reply #1"),
        ("bot", "[Council concluded]"),
    ]
    # The floor notices come from the bot, the members' words through the webhook; nothing pings anyone.
    assert all(not post.pings for post in harness.posts_in(thread.id))
    assert all(post.allowed_mentions == {"parse": []} for post in harness.posts_in(thread.id, kinds=("channel",)))
    # The chosen member hears why it has the floor; the chair's second choice saw Llama's words.
    llama_turn = next(body for model, body in turns(provider_server) if model == "llama-test")
    assert "Claude, the chair, gave you the floor: a realist should open" in prompt_text(llama_turn)
    floors = [r.json for r in provider_server.requests if asks_floor(r.json)]
    assert len(floors) == 3 and "llama-test reply #1" in prompt_text(floors[1])
    assert "Do not choose Llama, who just spoke" in prompt_text(floors[1])


# -- review ----------------------------------------------------------------------------------------------


async def test_review_posts_the_ranking_embed_between_the_answers_and_the_chairs_synthesis(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    answers = {
        "Claude": "As Claude I say: parks on half the lots.",
        "DeepSeek": "deepseek-test here. DeepSeek thinks: tolls first.",
        "Llama": "Llama's view: keep lots near the station.",
    }

    def member(name: str) -> Callable[[dict[str, Any]], str]:
        def reply(body: dict[str, Any]) -> str:
            if asks_ranking(body):
                return "They are all good in their way." if name == "Llama" else rank_every_response(body)
            if "Write the council's synthesis" in prompt_text(body):
                return "Synthesis: parks on most lots, tolls for the rest."
            return answers[name]

        return reply

    for name, model in MODELS.items():
        provider_server.script(model, member(name))
    await convene(harness, mode="review", chair="Claude", rounds=1)
    [thread] = harness.threads

    view = shown(harness, thread.id)
    assert view == [
        ("Claude", answers["Claude"]),
        ("DeepSeek", answers["DeepSeek"]),
        ("Llama", answers["Llama"]),
        ("bot", f"[{REVIEW_TITLE}]"),
        ("Claude", "Synthesis: parks on most lots, tolls for the rest."),
        ("bot", "[Council concluded]"),
    ]
    ranking = harness.posts_in(thread.id, kinds=("channel",))[0]
    [table] = ranking.embeds
    # The chart of the ranking rides with its table: the same figures, drawn (tests/test_charts.py checks them).
    assert ranking.attachments == ["ranking-1.png"] and table["image"]["url"] == "attachment://ranking-1.png"
    assert ranking.files["ranking-1.png"].startswith(b"\x89PNG")
    # The export's page draws it too, inside the page (after a deferral: drawing takes a second).
    exported = await harness.slash(harness.members["user"], "council", "export", channel=thread)
    assert exported.deferred and exported.response is not None
    page = exported.response.files["council-1.html"].decode("utf-8")
    assert page.count("data:image/png;base64,") == 1 and REVIEW_TITLE in page  # no ratings in this bot
    rows = table["description"].split("\n")
    # Claude and DeepSeek ranked the two others; Llama's ranking was unreadable and is named, not counted.
    assert len(rows) == 4 and rows[-1] == "⚠️ Llama's ranking could not be read and is not counted."
    assert sorted(re.sub(r"^\d\. \*\*(\w+)\*\*.*", r"\1", row) for row in rows[:3]) == ["Claude", "DeepSeek", "Llama"]
    # Llama was ranked by both readable ballots, Claude and DeepSeek by one each.
    counts = {
        re.search(r"\*\*(\w+)\*\*", row).group(1): re.search(r"from (\d) ranking", row).group(1) for row in rows[:3]
    }  # type: ignore[union-attr]
    assert counts == {"Claude": "1", "DeepSeek": "1", "Llama": "2"}
    assert table["footer"]["text"].startswith("Each member ranked the others' answers without their names")

    rankings = {r.model: r.json for r in provider_server.requests if asks_ranking(r.json)}
    assert set(rankings) == set(MODELS.values())
    for reviewer, model in MODELS.items():
        text = prompt_text(rankings[model])
        for name, other_model in MODELS.items():  # no member or model name anywhere in what a reviewer reads
            assert name.casefold() not in text.casefold() and other_model not in text, (reviewer, name)
        own = answers[reviewer].split(":")[-1].strip()
        assert own not in text, reviewer  # its own answer is left out
        others = [answers[n].split(":")[-1].strip() for n in MODELS if n != reviewer]
        assert all(other in text for other in others) and text.count("\nResponse ") == 2
    synthesis = next(body for _, body in turns(provider_server) if "Write the council's synthesis" in prompt_text(body))
    assert "mean place" in prompt_text(synthesis)


# -- debate ----------------------------------------------------------------------------------------------


async def test_debate_shows_stances_and_ends_early_once_every_member_holds(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    def member(name: str) -> Callable[[dict[str, Any]], str]:
        def reply(body: dict[str, Any]) -> str:
            text = prompt_text(body)
            if "Round 1 of" in text:
                return f"{name}: my first answer."
            if name == "Llama" and "Round 2 of" in text:
                return "Llama: you convinced me, parks it is.\nSTANCE: revised"
            return f"{name}: I keep my answer.\n**STANCE: holds**"

        return reply

    for name, model in MODELS.items():
        provider_server.script(model, member(name))
    await convene(harness, mode="debate", rounds=5)
    [thread] = harness.threads

    holds, revised = "-# 🛡️ holds its position", "-# 🔄 revised its position"
    view = shown(harness, thread.id)
    assert view == [
        ("Claude", "Claude: my first answer."),
        ("DeepSeek", "DeepSeek: my first answer."),
        ("Llama", "Llama: my first answer."),
        ("Claude", f"Claude: I keep my answer.\n{holds}"),
        ("DeepSeek", f"DeepSeek: I keep my answer.\n{holds}"),
        ("Llama", f"Llama: you convinced me, parks it is.\n{revised}"),
        ("Claude", f"Claude: I keep my answer.\n{holds}"),
        ("DeepSeek", f"DeepSeek: I keep my answer.\n{holds}"),
        ("Llama", f"Llama: I keep my answer.\n{holds}"),
        ("bot", "[Council concluded]"),
    ]
    closing = harness.posts_in(thread.id, kinds=("channel",))[-1].embeds[0]
    assert closing["description"] == "Every member holds its position after round 3; the debate has settled."
    fields = {field["name"]: field["value"] for field in closing["fields"]}
    assert fields["Rounds"] == "3 of 5"
    assert not any("Round 4 of" in prompt_text(body) for _, body in turns(provider_server))
    assert not any("STANCE" in content for _, content in view)  # the stance line became the marker


# -- talking to members ------------------------------------------------------------------------------------


async def test_replying_to_a_members_message_makes_it_answer_next_by_name(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    provider_server.script("deepseek-test", delay=0.4)
    await convene(harness, rounds=1, wait=False)
    [thread] = harness.threads
    await wait_for(lambda: len(provider_server.requests) == 2 and provider_server.in_flight == 1)  # DeepSeek thinks
    [claude_post] = harness.posts_in(thread.id, kinds=("webhook",))
    user = harness.members["user"]
    await harness.say(user, thread, "Why half the lots?", reply_to=claude_post.message_id, wait_background=False)
    await harness.settle()

    assert shown(harness, thread.id) == [
        ("Claude", "claude-test reply #1"),
        ("human", "Why half the lots?"),
        ("DeepSeek", "deepseek-test reply #1"),
        ("Claude", "claude-test reply #2"),
        ("Llama", "llama-test reply #1"),
        ("bot", "[Council concluded]"),
    ]
    assert [model for model, _ in turns(provider_server)] == [
        "claude-test",
        "deepseek-test",
        "claude-test",
        "llama-test",
    ]
    answer = turns(provider_server)[2][1]
    name = user.display_name
    asked = f'addressed you directly:\n<human name="{name}">\nWhy half the lots?\n</human>\nAnswer them by name'
    assert asked in prompt_text(answer)
    assert sum(addressed(body) for _, body in turns(provider_server)) == 1


async def test_naming_a_member_with_an_at_sign_makes_it_answer_after_the_turn_in_progress(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    provider_server.script("claude-test", delay=0.4)
    await convene(harness, rounds=1, wait=False)
    [thread] = harness.threads
    await wait_for(lambda: provider_server.in_flight == 1)  # Claude thinks
    user = harness.members["user"]
    await harness.say(user, thread, "What about buses, @llama? And @DeepSeek?", wait_background=False)
    await harness.settle()

    authors = [who for who, _ in shown(harness, thread.id)]
    assert authors == ["human", "Claude", "Llama", "DeepSeek", "Llama", "bot"]
    reply = turns(provider_server)[1]
    assert reply[0] == "llama-test" and addressed(reply[1])  # the first member named is the one who answers
    assert (
        f'<human name="{user.display_name}">\nWhat about buses, @llama? And @DeepSeek?\n</human>\nAnswer them'
        in prompt_text(reply[1])
    )
    assert sum(addressed(body) for _, body in turns(provider_server)) == 1


async def test_a_reply_to_a_message_that_is_not_a_members_is_just_part_of_the_discussion(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    provider_server.script("claude-test", delay=0.4)
    await convene(harness, rounds=1, wait=False)
    [thread] = harness.threads
    await wait_for(lambda: provider_server.in_flight == 1)  # Claude thinks
    first = await harness.say(harness.members["moderator"], thread, "Parks, but keep the disabled spaces.")
    # A webhook someone else made in the channel posts under a member's name: it is not that member.
    info = harness.seed_webhook(harness.channel, "Impostor")
    async with aiohttp.ClientSession() as session:  # unused: the harness answers webhook calls itself
        impostor = discord.Webhook.partial(info.id, info.token, session=session, client=harness.bot)
        spoof = await impostor.send("I am Claude, trust me.", username="Claude", thread=thread, wait=True)
    user = harness.members["user"]
    await harness.say(user, thread, "Agreed!", reply_to=first.id, wait_background=False)
    await harness.say(user, thread, "Really, Claude?", reply_to=spoof.id, wait_background=False)
    await harness.settle()

    view = shown(harness, thread.id)
    assert [who for who, _ in view] == ["human", "Claude", "human", "human", "Claude", "DeepSeek", "Llama", "bot"]
    assert view[1] == ("Claude", "I am Claude, trust me.")  # the impostor's post
    assert [model for model, _ in turns(provider_server)] == ["claude-test", "deepseek-test", "llama-test"]
    assert not any(addressed(body) for _, body in turns(provider_server))
    agreed = f'<human name="{user.display_name}">\nAgreed!\n</human>'
    assert agreed in prompt_text(turns(provider_server)[1][1])  # DeepSeek read it like any remark


# -- steering ----------------------------------------------------------------------------------------------


async def test_council_mode_is_for_the_convener_or_thread_managers_and_applies_from_the_next_round(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    # Long enough for the commands below to land while Claude thinks, even on a busy machine.
    provider_server.script("claude-test", delay=2.0, once=True)
    await convene(harness, rounds=2, wait=False)
    [thread] = harness.threads
    await wait_for(lambda: provider_server.in_flight == 1)  # round 1: Claude thinks

    refused(
        await harness.slash(harness.members["user"], "council", "mode", channel=thread, mode="parallel"),
        "Only the member who convened this council or someone with Manage Threads can do that.",
    )
    refused(
        await harness.slash(
            harness.members["convener"], "council", "mode", channel=thread, mode="round-robin", wait_background=False
        ),
        "The council already deliberates in round-robin mode.",
    )
    assert (await council(harness)).mode == "round-robin"
    assert harness.posts_in(thread.id, kinds=("channel",)) == []

    switched = await harness.slash(
        harness.members["moderator"], "council", "mode", channel=thread, mode="parallel", wait_background=False
    )
    assert switched.ephemeral and switched.content == "Council #1 deliberates in parallel mode from now on."
    await harness.settle()

    moderator = harness.members["moderator"].display_name
    view = shown(harness, thread.id)
    assert view[0] == (
        "bot",
        f"🔀 {moderator} switched the council to **parallel** (all at once each round, posted in seat order), "
        "from the next round.",
    )
    assert [who for who, _ in view[1:]] == ["Claude", "DeepSeek", "Llama", "Claude", "DeepSeek", "Llama", "bot"]
    bodies = [body for _, body in turns(provider_server)]
    # Round 1 still went in turn (Llama read DeepSeek); round 2 went at once (nobody read a round-2 reply).
    assert "deepseek-test reply #1" in prompt_text(bodies[2])
    assert not any("reply #2" in prompt_text(body) for body in bodies[3:])
    assert (await council(harness)).mode == "parallel"

    # An ended council's mode stays as it ended.
    refused(
        await harness.slash(harness.members["convener"], "council", "mode", channel=thread, mode="debate"),
        "The mode can only change while the council is active (running, paused or held).",
    )
    assert (await council(harness)).mode == "parallel"


async def test_a_conductor_council_switched_to_review_in_its_last_round_ranks_that_rounds_answers(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    choices = iter(["DeepSeek", "Llama", "Claude"])

    def claude(body: dict[str, Any]) -> str:
        if asks_floor(body):
            return json.dumps({"next": next(choices), "why": "their turn"})
        if asks_ranking(body):
            return rank_every_response(body)
        return "Synthesis: parks." if "Write the council's synthesis" in prompt_text(body) else "Claude: parks."

    provider_server.script("claude-test", claude, once=True, delay=0.4)  # the chair's first choice takes a while
    provider_server.script("claude-test", claude)
    for model in ("deepseek-test", "llama-test"):
        provider_server.script(
            model, lambda body, model=model: rank_every_response(body) if asks_ranking(body) else f"{model} answers."
        )
    await convene(harness, mode="conductor", chair="Claude", rounds=1, wait=False)
    [thread] = harness.threads
    await wait_for(lambda: provider_server.in_flight == 1)  # the chair is choosing who opens the only round

    switched = await harness.slash(
        harness.members["convener"], "council", "mode", channel=thread, mode="review", wait_background=False
    )
    assert switched.content == "Council #1 deliberates in review mode from now on."
    await harness.settle()

    view = shown(harness, thread.id)
    assert view[0][1].endswith(
        "switched the council to **review** (answer, rank each other's answers anonymously, then the chair's "
        "synthesis), once this round is done: the answers are then ranked and the chair sums up."
    )
    # The round itself was conducted as it began; then the promised ranking and synthesis followed.
    assert [who for who, _ in view[1:]] == [
        "bot", "DeepSeek", "bot", "Llama", "bot", "Claude", "bot", "Claude", "bot"
    ]  # fmt: skip
    assert view[7] == ("bot", f"[{REVIEW_TITLE}]") and view[8] == ("Claude", "Synthesis: parks.")
    [table] = harness.posts_in(thread.id, kinds=("channel",))[-2].embeds
    assert all("from 2 ranking(s)" in row for row in table["description"].split("\n"))
    assert len([r for r in provider_server.requests if asks_ranking(r.json)]) == 3


async def test_invite_and_dismiss_with_autocomplete_and_refusals_that_change_nothing(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    # Claude's first answer takes long enough for every command below to land first, even on a busy machine.
    provider_server.script("claude-test", delay=3.0, once=True)
    await convene(harness, members="Claude, Llama", rounds=2, wait=False)
    [thread] = harness.threads
    await wait_for(lambda: provider_server.in_flight == 1)  # round 1: Claude thinks
    convener = harness.members["convener"]

    # Invite offers the catalog's members not already at the table; dismiss offers those taking turns.
    invitable = await harness.autocomplete(convener, "council", "invite", focused="member", value="", channel=thread)
    assert [choice["value"] for choice in invitable] == ["DeepSeek", "Gemini"]
    seated = await harness.autocomplete(convener, "council", "dismiss", focused="member", value="lla", channel=thread)
    assert [choice["value"] for choice in seated] == ["Llama"]

    refusals = [
        ("invite", "Nobody", "There is no member called 'Nobody'."),
        ("invite", "Gemini", "Gemini needs TEST_MISSING_KEY"),
        ("invite", "llama", "Llama is already a member of this council."),
        ("dismiss", "DeepSeek", "'DeepSeek' is not a member of this council."),
    ]
    for command, member, text in refusals:
        result = await harness.slash(convener, "council", command, channel=thread, member=member, wait_background=False)
        refused(result, text)
    refused(
        await harness.slash(harness.members["user"], "council", "invite", channel=thread, member="DeepSeek"),
        "Only the member who convened this council",
    )
    assert harness.posts_in(thread.id, kinds=("channel",)) == []
    assert [m.name for m in await repo.list_members(harness.bot.db, 1)] == ["Claude", "Llama"]

    invited = await harness.slash(
        convener, "council", "invite", channel=thread, member="deepseek", wait_background=False
    )
    assert invited.ephemeral and invited.content == "DeepSeek joins council #1."
    dismissed = await harness.slash(
        convener, "council", "dismiss", channel=thread, member="Llama", wait_background=False
    )
    assert dismissed.ephemeral and dismissed.content == "Llama has left council #1."
    # Now Claude and DeepSeek take turns; DeepSeek can be sent away, but not the last one left.
    seated = await harness.autocomplete(convener, "council", "dismiss", focused="member", value="", channel=thread)
    assert [choice["value"] for choice in seated] == ["Claude", "DeepSeek"]
    await harness.slash(convener, "council", "dismiss", channel=thread, member="DeepSeek", wait_background=False)
    refused(
        await harness.slash(convener, "council", "dismiss", channel=thread, member="Claude", wait_background=False),
        "Claude is the last member taking turns; conclude the council instead.",
    )
    await harness.settle()

    name = convener.display_name
    assert shown(harness, thread.id) == [
        ("bot", f"🪑 {name} invited **DeepSeek (the Philosopher)**, who speaks from the next round."),
        ("bot", f"👋 {name} dismissed **Llama (the Realist)**; it takes no more turns."),
        ("bot", f"👋 {name} dismissed **DeepSeek (the Philosopher)**; it takes no more turns."),
        ("Claude", "claude-test reply #1"),
        ("Claude", "claude-test reply #2"),
        ("bot", "[Council concluded]"),
    ]
    assert [model for model, _ in turns(provider_server)] == ["claude-test", "claude-test"]


# -- convene options ---------------------------------------------------------------------------------------


async def test_a_token_limit_concludes_the_council_with_a_note_in_the_closing_embed(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    provider_server.script("claude-test", "word " * 600)  # about 600 output tokens a turn
    result = await convene(harness, members="Claude, Llama", rounds=5, max_tokens=1000)
    assert result.ephemeral and result.content.startswith("Council #1 is convened")
    [thread] = harness.threads
    [starter] = harness.posts_in(harness.channel.id, kinds=("channel",))
    assert {f["name"]: f["value"] for f in starter.embeds[0]["fields"]}["Limits"] == "1,000 tokens"

    stored = await council(harness)
    used = stored.tokens_in + stored.tokens_out
    assert stored.state == "concluded" and used >= 1000
    closing = harness.posts_in(thread.id, kinds=("channel",))[-1].embeds[0]
    assert closing["title"] == "Council concluded"
    assert closing["description"] == f"The council reached its limit of 1,000 tokens ({used:,} used)."
    # It stopped before the turn that would start past the limit, long before five rounds.
    assert len(harness.posts_in(thread.id, kinds=("webhook",))) < 4


async def test_a_chair_who_is_not_a_member_is_refused_before_anything_is_created(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    result = await convene(harness, members="Claude, Llama", mode="review", chair="DeepSeek")
    refused(result, "The chair must be one of the council's members; 'DeepSeek' is not.")
    assert not result.deferred  # refused at once, before the acknowledgement
    assert harness.threads == [] and harness.posts_in(harness.channel.id) == []
    assert harness.webhook_creations == {}
    assert await repo.get_council(harness.bot.db, 1) is None
    assert provider_server.requests == []


# -- Discord's limits ----------------------------------------------------------------------------------------

LONG_NAMES = [f"{prefix}. Quillfeather-Abernathy O'Ha {n}" for n, prefix in enumerate("ABCDEFGH", start=1)]


@pytest.fixture
async def big_harness(
    monkeypatch: pytest.MonkeyPatch, sqlite_db: Database, provider_server: FakeProviderServer, tmp_path: Path
) -> AsyncIterator[DiscordHarness]:
    """Eight members with names as long as the catalog allows (32 characters)."""
    members = [
        {
            "name": name,
            "role": f"the Advocate of Perspective {index} " + "and Considered Nuance " * 3,
            "provider": "openai",
            "model": f"long-model-{index}",
            "base_url": f"{provider_server.base_url}/v1",
            "persona": f"You are {name}.",
        }
        for index, name in enumerate(LONG_NAMES)
    ]
    catalog = Catalog.from_mapping({"member": members}, source="eight long names")
    started = await start_harness(monkeypatch, sqlite_db, catalog, tmp_path)
    yield started
    await started.close()


async def test_the_ranking_embed_of_eight_long_named_members_keeps_within_discords_limits(
    big_harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    assert all(len(name) == 32 for name in LONG_NAMES)
    for index, name in enumerate(LONG_NAMES):
        unreadable = index % 2 == 1  # half the rankings cannot be read: a warning row each

        def reply(body: dict[str, Any], name: str = name, unreadable: bool = unreadable) -> str:
            if asks_ranking(body):
                return "I cannot decide." if unreadable else rank_every_response(body)
            return f"{name} answers at length. " + "Parks and buses and trees. " * 120

        provider_server.script(f"long-model-{index}", reply)
    harness = big_harness
    await convene(harness, members=", ".join(LONG_NAMES), mode="review", rounds=1)
    [thread] = harness.threads

    tables = [post for post in harness.posts_in(thread.id, kinds=("channel",)) if REVIEW_TITLE in post.embed_titles]
    assert len(tables) == 1
    [embed] = tables[0].embeds
    # The fake Discord refused anything past the limits while the bot posted (the test would have failed);
    # checked again here so a change to the fake cannot make this test pass by accident.
    limits.check_embeds(tables[0].embeds)
    rows = embed["description"].split("\n")
    assert len(rows) == 8 + 4  # every member ranked, every unreadable ranking named: nothing cut
    assert sorted(re.search(r"\*\*(.+?)\*\*", row).group(1) for row in rows[:8]) == sorted(LONG_NAMES)  # type: ignore[union-attr]
    assert rows[8:] == [f"⚠️ {LONG_NAMES[i]}'s ranking could not be read and is not counted." for i in (1, 3, 5, 7)]
    # Four readable rankings: each member is in those of the others (a reviewer's own answer is left out).
    counts = {
        re.search(r"\*\*(.+?)\*\*", row).group(1): re.search(r"from (\d) ranking", row).group(1) for row in rows[:8]
    }  # type: ignore[union-attr]
    assert counts == {name: "3" if index % 2 == 0 else "4" for index, name in enumerate(LONG_NAMES)}
    # The members' long answers were split within 2,000 characters, under their own names.
    answers = harness.posts_in(thread.id, kinds=("webhook",))
    assert all(len(post.content or "") <= limits.CONTENT_MAX for post in answers)
    assert {post.author_name for post in answers} == set(LONG_NAMES)
    [starter] = harness.posts_in(harness.channel.id, kinds=("channel",))
    limits.check_embeds(starter.embeds)


async def test_the_chair_option_offers_the_members_being_named(harness: DiscordHarness) -> None:
    user = harness.members["convener"]
    named = await harness.autocomplete(
        user, "council", "convene", focused="chair", value="", topic="Cars?", members="llama, DeepSeek"
    )
    assert [choice["value"] for choice in named] == ["DeepSeek", "Llama"]  # catalog order
    everyone = await harness.autocomplete(user, "council", "convene", focused="chair", value="dee", topic="Cars?")
    assert [choice["value"] for choice in everyone] == ["DeepSeek"]


def test_the_members_field_keeps_whole_lines_within_discords_limit() -> None:
    from bot.catalog import MemberSpec
    from bot.council.seats import Seat
    from cogs.council._embeds import _seat_lines

    seats = [
        Seat(MemberSpec(f"Member{n:02d}" + "x" * 22, "openai", "m" * 60, "https://x.org", None, "p"), "r" * 100)
        for n in range(8)
    ]
    text = _seat_lines(seats)
    assert len(text) <= 1024
    lines = text.split("\n")
    assert lines[-1].startswith("… and ") and lines[-1].endswith("more (/council info lists them all)")
    assert all(line.startswith("**Member") for line in lines[:-1])  # no line cut in the middle
    assert _seat_lines(seats[:2]).count("\n") == 1  # what fits is shown whole, with no note
