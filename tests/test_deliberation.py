"""Deliberation modes, budgets and requests to members, in the engine against the fake provider server."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bot.catalog import Catalog
from bot.council import reports
from bot.council.engine import ConveneError, CouncilEngine
from bot.providers.pool import ProviderPool
from storage import deliberation_repository as deliberation_repo
from storage import repository as repo
from storage.database import Database
from tests.council_helpers import wait_for
from tests.engine_doubles import RecordingPublisher
from tests.fakes.provider_server import FakeProviderServer
from tests.test_engine import prompt_text

MODELS = {"Claude": "claude-test", "DeepSeek": "deepseek-test", "Llama": "llama-test"}


@pytest.fixture
async def engine(db: Database, catalog: Catalog, publisher: RecordingPublisher) -> AsyncIterator[CouncilEngine]:
    async with aiohttp.ClientSession() as session:
        council_engine = CouncilEngine(db, catalog, ProviderPool(session), publisher, provider_timeout=5)
        yield council_engine
        await council_engine.shutdown()


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


async def convene(engine: CouncilEngine, members: str = "Claude, DeepSeek, Llama", **options: Any) -> int:
    plan = engine.plan(
        topic=options.pop("topic", "Should cities ban cars?"),
        member_names=members,
        roles=options.pop("roles", None),
        rounds=options.pop("rounds", 1),
        mode=options.pop("mode", "round-robin"),
        **options,
    )
    council = await engine.create(plan, guild_id=1, channel_id=2, convener_id=3, convener_name="Ada")
    await engine.open(council.id, thread_id=900 + council.id)
    return council.id


def asks_floor(body: dict[str, Any]) -> bool:
    return '{"next"' in prompt_text(body)


def asks_ranking(body: dict[str, Any]) -> bool:
    return "FINAL RANKING" in prompt_text(body)


def turn_requests(server: FakeProviderServer) -> list[dict[str, Any]]:
    return [r.json for r in server.requests if not asks_floor(r.json) and not asks_ranking(r.json)]


# -- conductor -------------------------------------------------------------------------------------------


async def test_conductor_gives_the_floor_as_the_chair_decides(
    engine: CouncilEngine, publisher: RecordingPublisher, provider_server: FakeProviderServer
) -> None:
    choices = iter(["Llama", "DeepSeek", "Claude"])

    def chair(body: dict[str, Any]) -> str:
        if asks_floor(body):
            return json.dumps({"next": next(choices), "why": "their view is missing"})
        return "Claude speaks"

    provider_server.script("claude-test", chair)
    council_id = await convene(engine, mode="conductor")
    await publisher.wait_finished(council_id)

    assert publisher.transcript(council_id) == [
        ("system", "🎼 Claude gives the floor to **Llama**: their view is missing"),
        ("Llama", "llama-test reply #1"),
        ("system", "🎼 Claude gives the floor to **DeepSeek**: their view is missing"),
        ("DeepSeek", "deepseek-test reply #1"),
        ("system", "🎼 Claude gives the floor to **Claude**: their view is missing"),
        ("Claude", "Claude speaks"),
    ]
    # The chosen member hears why it has the floor; the chair's choice saw the discussion so far.
    llama_turn = next(b for b in turn_requests(provider_server) if b["model"] == "llama-test")
    assert "Claude, the chair, gave you the floor: their view is missing" in prompt_text(llama_turn)
    floors = [r.json for r in provider_server.requests if asks_floor(r.json)]
    assert "llama-test reply #1" in prompt_text(floors[1])
    assert "Do not choose Llama, who just spoke" in prompt_text(floors[1])
    council = await repo.get_council(engine.db, council_id)
    assert council is not None and council.state == "concluded"


async def test_conductor_falls_back_to_seat_order_and_says_why(
    engine: CouncilEngine, publisher: RecordingPublisher, provider_server: FakeProviderServer
) -> None:
    replies = iter(['{"next": "Nobody", "why": "x"}', "I would rather not choose.", '{"next": "Llama"}'])
    provider_server.script("claude-test", lambda body: next(replies) if asks_floor(body) else "Claude speaks")
    council_id = await convene(engine, mode="conductor", chair="Claude")
    await publisher.wait_finished(council_id)

    said = publisher.transcript(council_id)
    assert said[0] == (
        "system",
        "🎼 Claude did not give the floor ('Nobody' is not a member who may speak); **Claude** speaks next in seat order.",
    )
    assert said[1] == ("Claude", "Claude speaks")
    assert said[2] == (
        "system",
        "🎼 Claude did not give the floor (its answer named no member); **DeepSeek** speaks next in seat order.",
    )
    assert said[4] == ("system", "🎼 Claude gives the floor to **Llama**.")


async def test_conductor_survives_a_failing_chair(
    engine: CouncilEngine, publisher: RecordingPublisher, provider_server: FakeProviderServer
) -> None:
    provider_server.script("deepseek-test", status=401)
    council_id = await convene(engine, mode="conductor", chair="DeepSeek", members="DeepSeek, Llama")
    await publisher.wait_finished(council_id)
    said = publisher.transcript(council_id)
    assert said[0][1].startswith("🎼 DeepSeek did not give the floor (the chair could not answer (auth))")
    assert ("Llama", "llama-test reply #1") in said


# -- debate ----------------------------------------------------------------------------------------------


async def test_debate_answers_alone_first_then_ends_once_everyone_holds(
    engine: CouncilEngine, publisher: RecordingPublisher, provider_server: FakeProviderServer
) -> None:
    def member(name: str):
        def reply(body: dict[str, Any]) -> str:
            if "Round 1 of" in prompt_text(body):
                return f"{name}: my first answer."
            return f"{name}: I keep my answer.\n**STANCE: holds**"

        return reply

    for name, model in MODELS.items():
        provider_server.script(model, member(name))
    council_id = await convene(engine, mode="debate", rounds=4)
    await publisher.wait_finished(council_id)

    bodies = turn_requests(provider_server)
    first = [b for b in bodies if "Round 1 of" in prompt_text(b)]
    assert len(first) == 3
    for body in first:  # nobody saw another answer in round 1
        assert "my first answer" not in prompt_text(body)
    second = [b for b in bodies if "Round 2 of" in prompt_text(b)]
    assert all("Claude: my first answer." in prompt_text(b) or b["model"] == "claude-test" for b in second)
    assert all("STANCE: holds" in prompt_text(b) for b in second)  # they were asked for a stance
    # Round 2 settled it: no round 3, and the stance line became a marker.
    assert not any("Round 3 of" in prompt_text(b) for b in bodies)
    said = publisher.transcript(council_id)
    assert ("DeepSeek", "DeepSeek: I keep my answer.\n-# 🛡️ holds its position") in said
    council = await repo.get_council(engine.db, council_id)
    assert council is not None and council.end_reason == (
        "Every member holds its position after round 2; the debate has settled."
    )


async def test_debate_goes_on_while_a_member_revises(
    engine: CouncilEngine, publisher: RecordingPublisher, provider_server: FakeProviderServer
) -> None:
    provider_server.script("llama-test", lambda body: "I changed my mind.\nSTANCE: revised")
    provider_server.script("claude-test", lambda body: "Same.\nSTANCE: holds")
    council_id = await convene(engine, members="Claude, Llama", mode="debate", rounds=3)
    await publisher.wait_finished(council_id)
    said = publisher.transcript(council_id)
    assert said.count(("Llama", "I changed my mind.\n-# 🔄 revised its position")) == 2
    council = await repo.get_council(engine.db, council_id)
    assert council is not None and council.end_reason == "All 3 round(s) are done."


# -- review ----------------------------------------------------------------------------------------------


async def test_review_ranks_anonymously_then_the_chair_synthesizes(
    engine: CouncilEngine, publisher: RecordingPublisher, provider_server: FakeProviderServer
) -> None:
    answers = {
        "Claude": "Claude here: ban cars downtown.",
        "DeepSeek": "Define 'ban' first; deepseek-test thinks tolls.",
        "Llama": "Llama says: add buses.",
    }

    def member(name: str):
        def reply(body: dict[str, Any]) -> str:
            text = prompt_text(body)
            if asks_ranking(body):
                labels = re.findall(r"^Response ([A-Z]):", text, re.MULTILINE)
                if name == "Llama":
                    return "They are all fine."  # unreadable: recorded, not guessed
                return "Some thoughts.\nFINAL RANKING: " + " > ".join(f"Response {label}" for label in labels)
            if "Write the council's synthesis" in text:
                return "Synthesis: tolls and buses."
            return answers[name]

        return reply

    for name, model in MODELS.items():
        provider_server.script(model, member(name))
    council_id = await convene(engine, mode="review", chair="Claude")
    await publisher.wait_finished(council_id)

    rankings = [r.json for r in provider_server.requests if asks_ranking(r.json)]
    assert len(rankings) == 3
    for body in rankings:
        text = prompt_text(body)
        reviewer = next(name for name, model in MODELS.items() if model == body["model"])
        assert answers[reviewer].split(":")[0] not in text or reviewer == "Llama"
        for name, model in MODELS.items():  # no member or model name anywhere in the review request
            assert name not in text and model not in text, (reviewer, name)
        assert len(re.findall(r"^Response [A-Z]:", text, re.MULTILINE)) == 2  # its own answer left out
    said = publisher.transcript(council_id)
    kinds = [author for author, _ in said]
    assert kinds == ["Claude", "DeepSeek", "Llama", "system", "Claude"]
    table = said[3][1]
    assert "⚖️ Peer review: the answers ranked" in table
    assert "⚠️ Llama's ranking could not be read and is not counted." in table
    assert said[4] == ("Claude", "Synthesis: tolls and buses.")
    ballots = await deliberation_repo.list_ballots(engine.db, council_id)
    assert {(b.reviewer, b.state) for b in ballots} == {
        ("Claude", "ranked"),
        ("DeepSeek", "ranked"),
        ("Llama", "unreadable"),
    }
    for ballot in ballots:  # the labels shown are recorded, and they are what the seed draws
        labels = json.loads(ballot.labels)
        assert ballot.reviewer not in labels.values() and len(labels) == 2
    synthesis = next(b for b in turn_requests(provider_server) if "Write the council's synthesis" in prompt_text(b))
    assert "mean place" in prompt_text(synthesis)
    records = [line for line in await repo.transcript(engine.db, council_id) if line.visibility == "record"]
    assert {line.author_name for line in records} == {"Claude", "DeepSeek", "Llama"}
    status = await engine.status(council_id)  # members' lines: answers and synthesis, not the ballots
    assert status is not None and (status.ai_messages, status.human_messages) == (4, 0)

    # The export shows the table as text, and keeps every ballot: labels as shown, ranking or none.
    council = await repo.get_council(engine.db, council_id)
    assert council is not None
    record = await reports.load_record(engine.db, engine.catalog, council)
    markdown = reports.export_markdown(record)
    assert "**⚖️ Peer review: the answers ranked**" in markdown and '"rows"' not in markdown
    exported = json.loads(reports.export_json(record))
    assert exported["council"]["chair"] == "Claude"
    by_reviewer = {b["reviewer"]: b for b in exported["review_ballots"]}
    assert by_reviewer["Llama"]["state"] == "unreadable" and by_reviewer["Llama"]["ranking"] is None
    claude = by_reviewer["Claude"]
    assert sorted(claude["labels"].values()) == ["DeepSeek", "Llama"] and claude["seed"] == f"{council_id}:1:Claude"
    assert claude["ranking"] == list(claude["labels"].values())  # it ranked them in the order shown
    assert all(m["latency_ms"] is not None for m in exported["messages"] if m["turn_key"].startswith("ai:r1:"))


def test_rankings_are_parsed_strictly() -> None:
    from bot.council.review import labels_for, parse_ranking, standings

    assert parse_ranking("FINAL RANKING: Response B > Response A. A close call.", "AB") == ["B", "A"]
    assert parse_ranking("**Final ranking:**\n1. Response C\n2. Response A\n3. Response B", "ABC") == ["C", "A", "B"]
    assert parse_ranking("FINAL RANKING: Response A > Response A", "AB") is None
    assert parse_ranking("I prefer the first.", "AB") is None
    assert parse_ranking("FINAL RANKING: Response A", "AB") is None  # one left out: not guessed
    assert labels_for("7:1:Claude", "Claude", ["Claude", "DeepSeek", "Llama"]) == labels_for(
        "7:1:Claude", "Claude", ["Claude", "DeepSeek", "Llama"]
    )
    rows = standings([["B", "A"], ["B", "C"], ["A", "B"]], ["A", "B", "C"])
    assert [(r.name, r.mean_position, r.first_places) for r in rows] == [
        ("B", pytest.approx(4 / 3), 2),
        ("A", 1.5, 1),
        ("C", 2.0, 0),
    ]


# -- limits, requests, steering ----------------------------------------------------------------------------


async def test_a_token_limit_concludes_the_council_with_a_note(
    engine: CouncilEngine, publisher: RecordingPublisher, provider_server: FakeProviderServer
) -> None:
    council_id = await convene(engine, rounds=5, max_tokens=1000)
    await publisher.wait_finished(council_id)
    council = await repo.get_council(engine.db, council_id)
    assert council is not None and council.state == "concluded"
    assert council.end_reason is not None and council.end_reason.startswith(
        "The council reached its limit of 1,000 tokens"
    )
    used = council.tokens_in + council.tokens_out
    assert used >= 1000
    # It stopped at the first turn that would start past the limit, not at the end of the rounds.
    assert len(publisher.transcript(council_id)) < 15


async def test_a_cost_limit_counts_every_member_at_its_price(
    engine: CouncilEngine, publisher: RecordingPublisher, provider_server: FakeProviderServer
) -> None:
    provider_server.script("claude-test", "x" * 4000)  # Claude is priced; DeepSeek and Llama are free
    council_id = await convene(engine, rounds=10, max_cost=0.01)
    await publisher.wait_finished(council_id)
    council = await repo.get_council(engine.db, council_id)
    assert council is not None and council.end_reason is not None
    assert council.end_reason.startswith("The council reached its cost limit of $0.01")
    assert await engine.cost(council_id) >= 0.01


def test_limits_are_checked_at_convene(engine: CouncilEngine) -> None:
    with pytest.raises(ConveneError, match="chair must be one of the council's members"):
        engine.plan(topic="Cars?", member_names="Claude, Llama", roles=None, rounds=1, mode="review", chair="DeepSeek")
    with pytest.raises(ConveneError, match="token limit below 1,000"):
        engine.plan(topic="Cars?", member_names="Claude", roles=None, rounds=1, mode="debate", max_tokens=10)
    with pytest.raises(ConveneError, match="cost limit"):
        engine.plan(topic="Cars?", member_names="Claude", roles=None, rounds=1, mode="debate", max_cost=0)


async def test_turn_latency_is_recorded(
    engine: CouncilEngine, publisher: RecordingPublisher, provider_server: FakeProviderServer
) -> None:
    provider_server.script("llama-test", delay=0.2)
    council_id = await convene(engine, members="Claude, Llama")
    await publisher.wait_finished(council_id)
    lines = {line.author_name: line for line in await repo.transcript(engine.db, council_id)}
    assert lines["Llama"].latency_ms is not None and lines["Llama"].latency_ms >= 200
    assert lines["Claude"].latency_ms is not None and lines["Claude"].latency_ms < 200


async def test_a_human_naming_a_member_gets_its_answer_after_the_turn_in_progress(
    engine: CouncilEngine, publisher: RecordingPublisher, provider_server: FakeProviderServer
) -> None:
    provider_server.script("claude-test", delay=0.3)
    council_id = await convene(engine, rounds=1)
    await wait_for(lambda: len(provider_server.requests) >= 1)  # Claude's turn is in progress
    assert await engine.record_human(
        thread_id=900 + council_id,
        message_id=5555,
        author_id=7,
        author_name="Grace",
        content="@llama what about buses?",
    )
    await publisher.wait_finished(council_id)
    said = [author for author, _ in publisher.transcript(council_id)]
    assert said == ["Claude", "Llama", "DeepSeek", "Llama"]
    reply = next(b for b in turn_requests(provider_server) if "addressed you directly" in prompt_text(b))
    assert reply["model"] == "llama-test"
    asked = 'addressed you directly:\n<human name="Grace">\n@llama what about buses?\n</human>\nAnswer them by name'
    assert asked in prompt_text(reply)


async def test_switching_mode_applies_from_the_next_round(
    engine: CouncilEngine, publisher: RecordingPublisher, provider_server: FakeProviderServer
) -> None:
    provider_server.script("claude-test", delay=0.3)
    council_id = await convene(engine, members="Claude, Llama", rounds=2)
    await wait_for(lambda: len(provider_server.requests) >= 1)
    text = await engine.steering.switch_mode(council_id, "parallel", by="Ada", key="mode:1")
    assert (
        text
        == "🔀 Ada switched the council to **parallel** (all at once each round, posted in seat order), from the next round."
    )
    with pytest.raises(ConveneError, match="already deliberates in parallel"):
        await engine.steering.switch_mode(council_id, "parallel", by="Ada", key="mode:2")
    await publisher.wait_finished(council_id)
    council = await repo.get_council(engine.db, council_id)
    assert council is not None and council.mode == "parallel"
    assert publisher.transcript(council_id)[0] == ("system", text)


async def test_invited_members_speak_from_the_next_round_and_dismissed_ones_stop(
    engine: CouncilEngine, publisher: RecordingPublisher, provider_server: FakeProviderServer
) -> None:
    provider_server.script("claude-test", delay=0.3)
    council_id = await convene(engine, members="Claude, Llama", rounds=2)
    await wait_for(lambda: len(provider_server.requests) >= 1)  # round 1 has begun
    with pytest.raises(ConveneError, match="needs TEST_MISSING_KEY"):
        await engine.steering.invite(council_id, "Gemini", by="Ada", key="invite:0")
    with pytest.raises(ConveneError, match="already a member"):
        await engine.steering.invite(council_id, "llama", by="Ada", key="invite:0")
    await engine.steering.invite(council_id, "DeepSeek", by="Ada", key="invite:1")
    await engine.steering.dismiss(council_id, "Llama", by="Ada", key="dismiss:1")
    with pytest.raises(ConveneError, match="not a member"):
        await engine.steering.dismiss(council_id, "Llama", by="Ada", key="dismiss:2")
    await publisher.wait_finished(council_id)
    said = publisher.transcript(council_id)
    assert said[:2] == [
        ("system", "🪑 Ada invited **DeepSeek (the Philosopher)**, who speaks from the next round."),
        ("system", "👋 Ada dismissed **Llama (the Realist)**; it takes no more turns."),
    ]
    assert [author for author, _ in said[2:]] == ["Claude", "Claude", "DeepSeek"]
    # The last member taking turns cannot be sent away.
    other = await convene(engine, members="Claude", rounds=1)
    with pytest.raises(ConveneError, match="last member"):
        await engine.steering.dismiss(other, "Claude", by="Ada", key="dismiss:3")
