"""Peer ratings in the engine, against real storage and the loopback fake provider, without Discord."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from bot.catalog import Catalog
from bot.council.engine import CouncilEngine
from bot.council.ratings import RatingError, parse_ratings, parse_score
from bot.providers.pool import ProviderPool
from storage import ratings_repository as ratings_repo
from storage import repository as repo
from storage.database import Database
from storage.models import PeerRating
from tests.engine_doubles import RecordingPublisher
from tests.fakes.provider_server import FakeProviderServer

MEMBERS = ("Claude", "DeepSeek", "Llama")
MODELS = {"Claude": "claude-test", "DeepSeek": "deepseek-test", "Llama": "llama-test"}


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def make_engine(
    db: Database, catalog: Catalog, session: aiohttp.ClientSession, publisher: RecordingPublisher
) -> Callable[..., CouncilEngine]:
    def make(**options: Any) -> CouncilEngine:
        return CouncilEngine(db, catalog, ProviderPool(session), publisher, provider_timeout=5, **options)

    return make


def system_text(body: dict[str, Any]) -> str:
    if isinstance(body.get("system"), str):
        return body["system"]
    return next((m["content"] for m in body["messages"] if m["role"] == "system"), "")


def is_rating(body: dict[str, Any]) -> bool:
    return "Rate the contributions of each other member" in system_text(body)


def last_user_text(body: dict[str, Any]) -> str:
    return [m["content"] for m in body["messages"] if m["role"] == "user"][-1]


def rating_bodies(server: FakeProviderServer) -> list[dict[str, Any]]:
    return [r.json for r in server.requests if is_rating(r.json)]


def replies(server: FakeProviderServer, ratings: dict[str, str], **options: Any) -> None:
    """Members answer turns as usual and ratings with the given text (options: the fake's Behaviour fields)."""
    for name, text in ratings.items():
        model = MODELS[name]

        def reply(body: dict[str, Any], model: str = model, text: str = text) -> str:
            turns = sum(1 for r in server.requests if r.model == model and not is_rating(r.json))
            return text if is_rating(body) else f"{model} reply #{turns}"

        server.script(model, reply, **options.get(name, {}))


async def convene(engine: CouncilEngine, members: str = "Claude, DeepSeek, Llama", rounds: int = 1) -> int:
    plan = engine.plan(
        topic="Should cities ban cars?", member_names=members, roles=None, rounds=rounds, mode="round-robin"
    )
    council = await engine.create(plan, guild_id=1, channel_id=2, convener_id=3, convener_name="Ada")
    assert council.id is not None
    await engine.open(council.id, thread_id=900 + council.id)
    return council.id


async def test_members_rate_each_other_at_conclude_never_themselves_and_the_scoreboard_is_posted_once(
    make_engine: Callable[..., CouncilEngine], publisher: RecordingPublisher, provider_server: FakeProviderServer
) -> None:
    replies(
        provider_server,
        {
            "Claude": "```\nName | clarity | insight | self-awareness | reason\n"
            "DeepSeek | 4 | 5 | 3 | Sharp on ethics.\nLlama | 4/5 | 2 | 4 | Practical but thin.\n```",
            "DeepSeek": "Here are my ratings:\n- **Claude (the Coordinator)** | 5 | 4 | 4 | Clear chairing.\n"
            "- llama | 3 | 3 | 5 | Honest about limits.",
            "Llama": '{"ratings": [{"member": "Claude", "clarity": 3, "insight": "4/5", "self_awareness": 2, '
            '"reason": "Useful summary."}, {"member": "DeepSeek", "clarity": 2, "insight": 3, '
            '"self-awareness": 3, "reason": "Abstract."}]}',
        },
    )
    engine = make_engine(peer_ratings=True)
    council_id = await convene(engine)
    await publisher.wait_finished(council_id)
    await engine.wait_idle(council_id)

    bodies = rating_bodies(provider_server)
    assert sorted(b["model"] for b in bodies) == ["claude-test", "deepseek-test", "llama-test"]
    for body in bodies:
        rater = next(name for name, model in MODELS.items() if model == body["model"])
        others = [name for name in MEMBERS if name != rater]
        ask = system_text(body).split("Rate the contributions of each other member:", 1)[1].split("\n", 1)[0]
        assert rater not in ask and all(other in ask for other in others)
        closing = last_user_text(body).rsplit("\n\n", 1)[-1]
        assert closing.startswith(f"Now rate {', '.join(others)}: one line each")
        # The rater reads the whole discussion, its own words as its own turns.
        everything = "\n".join(m["content"] for m in body["messages"])
        assert all(f"{MODELS[other]} reply #1" in everything for other in others)
        assert {"role": "assistant", "content": f"{body['model']} reply #1"} in body["messages"]

    [board] = publisher.scoreboards
    assert [p.kind for p in publisher.posts].count("scoreboard") == 1
    assert publisher.posts[-1].kind == "scoreboard"  # after the last turn
    scores = {m.name: (m.ratings, m.clarity, m.insight, m.self_awareness) for m in board.members}
    assert scores == {"Claude": (2, 4.0, 4.0, 3.0), "DeepSeek": (2, 3.0, 4.0, 3.0), "Llama": (2, 3.5, 2.5, 4.5)}
    assert [m.name for m in board.members] == ["Claude", "Llama", "DeepSeek"]  # 3.67, 3.5, 3.33
    assert board.problems == () and board.ended and board.number == 1
    assert ("DeepSeek", "Claude", (5, 4, 4), "Clear chairing.") in {
        (r.rater, r.ratee, r.scores, r.reason) for r in board.reasons
    }
    rows = await ratings_repo.round_ratings(engine.db, council_id, await newest_turn(engine.db, council_id))
    assert len(rows) == 6 and {r.status for r in rows} == {"rated"}
    assert all(r.rater != r.ratee for r in rows)
    council = await repo.get_council(engine.db, council_id)
    assert council is not None and council.tokens_out > 3 * 3  # the rating calls are counted too


async def newest_turn(db: Database, council_id: int) -> int:
    lines = await repo.transcript(db, council_id)
    return max(line.id or 0 for line in lines if line.author_kind == "ai")


async def test_unreadable_replies_and_a_failing_rater_are_recorded_and_do_not_stop_the_others(
    make_engine: Callable[..., CouncilEngine], publisher: RecordingPublisher, provider_server: FakeProviderServer
) -> None:
    engine = make_engine()  # no automatic ratings: /council rate's path
    council_id = await convene(engine)
    await engine.wait_idle(council_id)
    assert publisher.scoreboards == [] and rating_bodies(provider_server) == []

    provider_server.script("claude-test", "I think they all did great work, honestly!")
    provider_server.script(
        "deepseek-test", "Claude | 6 | 4 | 4 | Too good.\nLlama | 3 | 4 | 2.5 | Hm.\nLlama | 3 | 4 | 2 | Ok."
    )
    provider_server.script("llama-test", status=401)
    board = await engine.ratings.rate(council_id)

    rows = await ratings_repo.round_ratings(engine.db, council_id, await newest_turn(engine.db, council_id))
    by_pair = {(r.rater, r.ratee): r for r in rows}
    assert {pair: r.status for pair, r in by_pair.items()} == {
        ("Claude", "DeepSeek"): "unparseable",
        ("Claude", "Llama"): "unparseable",
        ("DeepSeek", "Claude"): "unparseable",  # 6 is not a score
        ("DeepSeek", "Llama"): "unparseable",  # two different lines: neither is taken
        ("Llama", "Claude"): "failed",
        ("Llama", "DeepSeek"): "failed",
    }
    assert by_pair[("Claude", "Llama")].raw_reply == "I think they all did great work, honestly!"
    assert by_pair[("DeepSeek", "Claude")].clarity is None  # nothing guessed
    assert "invalid x-api-key" in by_pair[("Llama", "Claude")].reason
    assert all(m.ratings == 0 and m.overall is None for m in board.members)
    assert board.problems == (
        "Claude's reply gave no readable rating for DeepSeek, Llama.",
        "DeepSeek's reply gave no readable rating for Claude, Llama.",
        "Llama could not rate: authentication failed (HTTP 401): invalid x-api-key",
    )
    assert len(publisher.scoreboards) == 1


async def test_a_second_rate_adds_nothing_and_a_resumed_round_asks_only_the_missing_raters(
    make_engine: Callable[..., CouncilEngine],
    publisher: RecordingPublisher,
    provider_server: FakeProviderServer,
    db: Database,
) -> None:
    engine = make_engine()
    council_id = await convene(engine)
    await engine.wait_idle(council_id)
    as_of = await newest_turn(db, council_id)
    # A stop in the middle of a round: Claude's answer was stored, the others' were not.
    stored = [
        PeerRating(
            council_id=council_id,
            guild_id=1,
            as_of_message_id=as_of,
            rater="Claude",
            ratee=name,
            status="rated",
            clarity=5,
            insight=5,
            self_awareness=5,
            reason="Stored before the stop.",
        )
        for name in ("DeepSeek", "Llama")
    ]
    assert await ratings_repo.store_rater_ratings(db, council_id, stored)
    assert not await ratings_repo.store_rater_ratings(
        db, council_id, [PeerRating(**s.model_dump(exclude={"id"})) for s in stored]
    )
    replies(
        provider_server,
        {
            "DeepSeek": "Claude | 4 | 4 | 4 | Fine.\nLlama | 2 | 2 | 2 | Vague.",
            "Llama": "Claude | 3 | 3 | 3 | Ok.\nDeepSeek | 1 | 1 | 1 | Off topic.",
        },
    )

    board = await engine.ratings.rate(council_id)
    assert sorted(b["model"] for b in rating_bodies(provider_server)) == ["deepseek-test", "llama-test"]
    assert {m.name: m.ratings for m in board.members} == {"Claude": 2, "DeepSeek": 2, "Llama": 2}
    assert len(await ratings_repo.round_ratings(db, council_id, as_of)) == 6

    with pytest.raises(RatingError, match="an ended council is rated once"):
        await engine.ratings.rate(council_id)
    assert len(rating_bodies(provider_server)) == 2 and len(publisher.scoreboards) == 1


async def test_no_ratings_when_fewer_than_two_members_spoke(
    make_engine: Callable[..., CouncilEngine], publisher: RecordingPublisher, provider_server: FakeProviderServer
) -> None:
    provider_server.script("llama-test", status=401)  # Llama never speaks
    engine = make_engine(peer_ratings=True)
    council_id = await convene(engine, members="Claude, Llama")
    await engine.wait_idle(council_id)
    assert rating_bodies(provider_server) == [] and publisher.scoreboards == []
    with pytest.raises(RatingError, match="at least two members who have spoken"):
        await engine.ratings.rate(council_id)


async def test_a_failed_council_is_not_rated_at_its_end(
    make_engine: Callable[..., CouncilEngine], publisher: RecordingPublisher, provider_server: FakeProviderServer
) -> None:
    council_id = await convene(make_engine())
    await publisher.wait_finished(council_id)
    assert await repo.transition_council(
        make_engine().db, council_id, from_states=("concluded",), to_state="failed", reason="internal error"
    )
    failed = await repo.get_council(make_engine().db, council_id)
    assert failed is not None
    await make_engine(peer_ratings=True).ratings.after_conclude(failed)
    assert rating_bodies(provider_server) == [] and publisher.scoreboards == []


async def test_a_scoreboard_stored_but_not_recorded_as_posted_is_posted_once_after_a_restart(
    make_engine: Callable[..., CouncilEngine], publisher: RecordingPublisher, db: Database
) -> None:
    engine = make_engine(peer_ratings=True)
    council_id = await convene(engine)
    await engine.wait_idle(council_id)
    [line] = [m for m in await repo.transcript(db, council_id) if m.turn_key.startswith("scoreboard:")]
    assert line.visibility == "scoreboard" and line.discord_ids
    await engine.shutdown()

    # The process stopped after posting, before recording: the thread has it, the database does not know.
    await repo.record_posted(db, line.id or 0, [])
    restarted = make_engine(peer_ratings=True)
    await restarted.resume_all()
    assert [p.kind for p in publisher.posts].count("scoreboard") == 1
    assert (await repo.get_message(db, line.id or 0)).discord_ids  # type: ignore[union-attr]

    # The process stopped before posting at all: it is posted at the next start, once.
    publisher.posts = [p for p in publisher.posts if p.kind != "scoreboard"]
    await repo.record_posted(db, line.id or 0, [])
    await make_engine(peer_ratings=True).resume_all()
    await make_engine(peer_ratings=True).resume_all()
    assert [p.kind for p in publisher.posts].count("scoreboard") == 1


# -- reading replies ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "score"),
    [
        *[(4, 4), ("4", 4), ("4/5", 4), (" 5 / 5 ", 5), ("clarity: 3", 3), ("**2**", 2), ("1.", 1)],
        *[
            (0, None),
            (6, None),
            ("6/5", None),
            ("4/10", None),
            ("3.5", None),
            ("four", None),
            (True, None),
            (None, None),
        ],
    ],
)
def test_scores_are_whole_numbers_from_one_to_five(value: object, score: int | None) -> None:
    assert parse_score(value) == score


def test_ratings_are_read_from_tables_labels_and_json_but_never_guessed() -> None:
    names = ["Claude", "DeepSeek"]
    table = (
        "| Name | Clarity | Insight | Self-awareness | Reason |\n|---|---|---|---|---|\n| Claude | 4 | 4 | 3 | Good. |"
    )
    assert set(parse_ratings(table, names)) == {"Claude"}
    labelled = "1. Member: deepseek (the Philosopher) | 5/5 | 4 | 4 | Deep | and careful."
    [rating] = parse_ratings(labelled, names).values()
    assert (rating.ratee, rating.clarity, rating.reason) == ("DeepSeek", 5, "Deep | and careful.")
    by_name = '```json\n{"Claude": {"clarity": 2, "insight": 2, "self_awareness": 2, "reason": "Thin."}}\n```'
    assert parse_ratings(by_name, names)["Claude"].insight == 2
    assert parse_ratings("Claude | 4 | 4 | Good.", names) == {}  # a score missing
    assert parse_ratings("Gemini | 4 | 4 | 4 | Not here.", names) == {}
    assert parse_ratings('{"broken": ', names) == {}
    same_twice = "Claude | 4 | 4 | 4 | Good.\nClaude | 4 | 4 | 4 | Good."
    assert set(parse_ratings(same_twice, names)) == {"Claude"}
    long_reason = parse_ratings("Claude | 4 | 4 | 4 | " + "word " * 200, names)["Claude"].reason
    assert len(long_reason) <= 300 and long_reason.endswith("…")
