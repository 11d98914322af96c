"""The council engine against real storage and the loopback fake provider, without Discord."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.catalog import Catalog
from bot.council.engine import ConveneError, ConveneLimits, CouncilEngine, CouncilPlan
from bot.council.memory import MINUTES_HEADING
from bot.council.seats import Seat
from bot.providers.pool import ProviderPool
from storage import repository as repo
from storage.database import Database
from storage.template_repository import MINUTES_TURN_KEY, save_template
from tests.council_helpers import wait_for
from tests.engine_doubles import RecordingPublisher
from tests.fakes.provider_server import FakeProviderServer


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
async def engine(
    db: Database, catalog: Catalog, session: aiohttp.ClientSession, publisher: RecordingPublisher
) -> AsyncIterator[CouncilEngine]:
    council_engine = CouncilEngine(db, catalog, ProviderPool(session), publisher, provider_timeout=5)
    yield council_engine
    await council_engine.shutdown()


async def convene(engine: CouncilEngine, members: str = "Claude, DeepSeek, Llama", **options: object) -> int:
    plan: CouncilPlan = engine.plan(
        topic=str(options.get("topic", "Should cities ban cars?")),
        member_names=members,
        roles=options.get("roles"),  # type: ignore[arg-type]
        rounds=int(options.get("rounds", 2)),  # type: ignore[arg-type]
        mode=str(options.get("mode", "round-robin")),
    )
    council = await engine.create(plan, guild_id=1, channel_id=2, convener_id=3, convener_name="Ada")
    await engine.open(council.id, thread_id=900 + council.id)
    return council.id


def prompt_text(body: dict) -> str:
    """Everything a member was sent, system prompt included, as one string."""
    parts = [body.get("system", "")] if isinstance(body.get("system"), str) else []
    for message in body["messages"]:
        content = message["content"]
        # A turn with images: its text parts (Anthropic's text blocks, OpenAI's text parts).
        parts += [content] if isinstance(content, str) else [p["text"] for p in content if p.get("type") == "text"]
    return "\n".join(parts)


async def test_round_robin_members_speak_in_order_and_see_everything_before(
    engine: CouncilEngine, publisher: RecordingPublisher, provider_server: FakeProviderServer
) -> None:
    council_id = await convene(engine)
    await publisher.wait_finished(council_id)

    assert publisher.transcript(council_id) == [
        ("Claude", "claude-test reply #1"),
        ("DeepSeek", "deepseek-test reply #1"),
        ("Llama", "llama-test reply #1"),
        ("Claude", "claude-test reply #2"),
        ("DeepSeek", "deepseek-test reply #2"),
        ("Llama", "llama-test reply #2"),
    ]
    bodies = [r.json for r in provider_server.requests]
    assert [b["model"] for b in bodies] == ["claude-test", "deepseek-test", "llama-test"] * 2
    llama_round1 = prompt_text(bodies[2])
    assert '<member name="Claude" role="the Coordinator">\nclaude-test reply #1\n</member>' in llama_round1
    assert '<member name="DeepSeek" role="the Philosopher">\ndeepseek-test reply #1\n</member>' in llama_round1
    # Claude's second turn sends its own first reply back as an assistant turn.
    assert {"role": "assistant", "content": "claude-test reply #1"} in bodies[3]["messages"]
    council = await repo.get_council(engine.db, council_id)
    assert council is not None and council.state == "concluded" and council.current_round == 2
    assert council.tokens_out == 6 * 3  # each fake reply is three words


async def test_parallel_round_members_see_only_previous_rounds_and_post_in_seat_order(
    engine: CouncilEngine, publisher: RecordingPublisher, provider_server: FakeProviderServer
) -> None:
    # The first seat is the slowest: posts must still follow seat order.
    provider_server.script("claude-test", delay=0.3)
    provider_server.script("deepseek-test", delay=0.1)
    provider_server.script("llama-test", delay=0.2)
    council_id = await convene(engine, mode="parallel")
    await publisher.wait_finished(council_id)

    assert [author for author, _ in publisher.transcript(council_id)] == ["Claude", "DeepSeek", "Llama"] * 2
    assert provider_server.max_in_flight == 3
    round1 = provider_server.requests[:3]
    round2 = provider_server.requests[3:]
    for request in round1:
        assert "reply #" not in prompt_text(request.json)
    for request in round2:
        text = prompt_text(request.json)
        for model in ("claude-test", "deepseek-test", "llama-test"):
            assert f"{model} reply #1" in text
        assert "reply #2" not in text


async def test_human_interjection_reaches_every_later_turn(
    engine: CouncilEngine, publisher: RecordingPublisher, provider_server: FakeProviderServer
) -> None:
    provider_server.script("claude-test", delay=0.3)
    council_id = await convene(engine, rounds=1)
    thread_id = 900 + council_id
    await wait_for(lambda: provider_server.in_flight == 1)  # Claude is thinking
    assert await engine.record_human(
        thread_id=thread_id, message_id=555, author_id=7, author_name="Grace", content="What about buses?"
    )
    # The same Discord message delivered twice is stored once.
    assert not await engine.record_human(
        thread_id=thread_id, message_id=555, author_id=7, author_name="Grace", content="What about buses?"
    )
    await publisher.wait_finished(council_id)

    claude, deepseek, llama = (r.json for r in provider_server.requests)
    said = '<human name="Grace">\nWhat about buses?\n</human>'
    assert '<human name="Grace">' not in prompt_text(claude)  # its turn started before Grace spoke
    assert said in prompt_text(deepseek)
    assert said in prompt_text(llama)
    lines = await repo.transcript(engine.db, council_id)
    assert [(line.author_kind, line.author_name) for line in lines] == [
        ("human", "Grace"),
        ("ai", "Claude"),
        ("ai", "DeepSeek"),
        ("ai", "Llama"),
    ]


async def test_pause_holds_the_next_turn_and_resume_continues(
    engine: CouncilEngine, publisher: RecordingPublisher, provider_server: FakeProviderServer
) -> None:
    provider_server.script("claude-test", delay=0.2)
    council_id = await convene(engine, rounds=1)
    await wait_for(lambda: provider_server.in_flight == 1)  # Claude is thinking
    assert await engine.pause(council_id)
    assert not await engine.pause(council_id)  # already paused
    await wait_for(lambda: bool(publisher.transcript(council_id)))
    await asyncio.sleep(0.3)  # time enough for a next turn, were it allowed
    # The turn in progress finished and was shown; nobody else was asked.
    assert [r.model for r in provider_server.requests] == ["claude-test"]
    assert publisher.transcript(council_id) == [("Claude", "claude-test reply #1")]
    assert await engine.resume(council_id)
    await publisher.wait_finished(council_id)
    assert [author for author, _ in publisher.transcript(council_id)] == ["Claude", "DeepSeek", "Llama"]


async def test_conclude_stops_at_once_and_reports_once(
    engine: CouncilEngine, publisher: RecordingPublisher, provider_server: FakeProviderServer
) -> None:
    provider_server.script("claude-test", delay=2)
    council_id = await convene(engine)
    await asyncio.sleep(0.1)
    assert await engine.conclude(council_id, "Concluded by Ada.")
    assert not await engine.conclude(council_id, "again")
    assert publisher.transcript(council_id) == []
    assert len(publisher.finished) == 1 and publisher.finished[0].end_reason == "Concluded by Ada."
    council = await repo.get_council(engine.db, council_id)
    assert council is not None and council.state == "concluded" and council.ended_at is not None


async def test_a_failing_member_is_noted_and_the_council_goes_on(
    engine: CouncilEngine, publisher: RecordingPublisher, provider_server: FakeProviderServer
) -> None:
    provider_server.script("deepseek-test", status=500, message="upstream exploded")
    council_id = await convene(engine, rounds=1)
    await publisher.wait_finished(council_id)
    posts = publisher.transcript(council_id)
    assert posts[0] == ("Claude", "claude-test reply #1")
    assert posts[1][0] == "system" and "DeepSeek could not answer in round 1" in posts[1][1]
    assert "sk-" not in posts[1][1]
    assert posts[2] == ("Llama", "llama-test reply #1")


async def test_roles_reach_the_system_prompt(
    engine: CouncilEngine, publisher: RecordingPublisher, provider_server: FakeProviderServer
) -> None:
    council_id = await convene(engine, "Claude, DeepSeek", rounds=1, roles="deepseek=the Skeptic")
    await publisher.wait_finished(council_id)
    claude, deepseek = (r.json for r in provider_server.requests)
    assert "You are DeepSeek, the Skeptic," in deepseek["messages"][0]["content"]
    assert "DeepSeek (the Skeptic)" in claude["system"]
    assert "temperature" not in claude and deepseek["temperature"] == 0.8


async def test_restart_posts_what_was_generated_and_continues_without_repeating(
    db: Database, catalog: Catalog, session: aiohttp.ClientSession, provider_server: FakeProviderServer
) -> None:
    first = RecordingPublisher()
    engine = CouncilEngine(db, catalog, ProviderPool(session), first)
    plan = engine.plan(topic="Restart me", member_names="Claude, Llama", roles=None, rounds=1, mode="round-robin")
    council = await engine.create(plan, guild_id=1, channel_id=2, convener_id=3, convener_name="Ada")
    # The process died after storing Claude's turn and before showing it.
    await repo.set_council_thread(db, council.id, 42)
    await repo.transition_council(db, council.id, from_states=("starting",), to_state="running")
    await repo.set_current_round(db, council.id, 1)
    await repo.add_message(
        db,
        council_id=council.id,
        round_number=1,
        author_kind="ai",
        author_name="Claude",
        turn_key="ai:r1:Claude",
        content="stored before the crash",
    )

    second = RecordingPublisher()
    restarted = CouncilEngine(db, catalog, ProviderPool(session), second)
    assert await restarted.resume_all() == [council.id]
    await second.wait_finished(council.id)
    assert second.transcript(council.id) == [("Claude", "stored before the crash"), ("Llama", "llama-test reply #1")]
    assert [r.model for r in provider_server.requests] == ["llama-test"]
    assert first.posts == []


@pytest.mark.parametrize(
    ("members", "roles", "rounds", "mode", "message"),
    [
        ("Claude, Nobody", None, 2, "round-robin", "no member called 'Nobody'"),
        ("Claude, Gemini", None, 2, "round-robin", "Gemini needs TEST_MISSING_KEY"),
        ("Claude, claude", None, 2, "round-robin", "Claude is named twice"),
        (" , ", None, 2, "round-robin", "Name at least one member"),
        ("Claude", "Claude Philosopher", 2, "round-robin", "Write roles as"),
        ("Claude", "Llama=Realist", 2, "round-robin", "not a member of this council"),
        ("Claude", None, 11, "round-robin", "Rounds must be between 1 and 10"),
        ("Claude", None, 2, "chaos", "Mode must be one of"),
    ],
)
async def test_bad_convene_requests_are_refused_with_a_reason(
    engine: CouncilEngine, members: str, roles: str | None, rounds: int, mode: str, message: str
) -> None:
    with pytest.raises(ConveneError, match=message):
        engine.plan(topic="A fine topic", member_names=members, roles=roles, rounds=rounds, mode=mode)
    assert await repo.list_councils_in_state(engine.db, ("starting", "running")) == []


async def test_limits_refuse_convenes_beyond_the_server_and_hourly_caps(
    db: Database, catalog: Catalog, session: aiohttp.ClientSession, provider_server: FakeProviderServer
) -> None:
    provider_server.script("llama-test", delay=2)
    engine = CouncilEngine(
        db,
        catalog,
        ProviderPool(session),
        RecordingPublisher(),
        limits=ConveneLimits(running_per_user=5, running_per_server=2, convenes_per_user_per_hour=3),
    )
    try:
        for _ in range(2):
            await engine.admit(guild_id=1, user_id=3)
            await convene(engine, "Llama", rounds=1)
        with pytest.raises(ConveneError, match="This server already runs 2 councils"):
            await engine.admit(guild_id=1, user_id=4)
        await engine.admit(guild_id=2, user_id=3)  # another server has its own cap
        for council in await repo.list_councils_in_state(db, ("running",)):
            await engine.conclude(council.id, "done")
        await engine.admit(guild_id=1, user_id=3)
        await convene(engine, "Llama", rounds=1)
        with pytest.raises(ConveneError, match="You convened 3 councils in the last hour"):
            await engine.admit(guild_id=1, user_id=3)
    finally:
        await engine.shutdown()


@pytest.mark.parametrize("with_memory", [False, True], ids=["plain", "template-with-memory"])
async def test_prompts_stay_within_the_context_budget_on_a_200_turn_council(
    db: Database,
    catalog: Catalog,
    session: aiohttp.ClientSession,
    provider_server: FakeProviderServer,
    with_memory: bool,
) -> None:
    budget = 1500
    speech = " ".join(f"Point {i} deserves a careful answer." for i in range(60))  # about 90 tokens
    for model in ("claude-test", "deepseek-test", "llama-test"):
        provider_server.script(model, speech)
    publisher = RecordingPublisher()
    engine = CouncilEngine(db, catalog, ProviderPool(session), publisher, context_budget=budget)
    seats = engine.plan(
        topic="Endless", member_names="Claude, DeepSeek, Llama", roles=None, rounds=1, mode="round-robin"
    ).seats
    template_id = await _template_with_past_sessions(db, seats) if with_memory else None
    plan = CouncilPlan(topic="Endless", seats=seats, rounds=67, mode="round-robin", template_id=template_id)
    council = await engine.create(plan, guild_id=1, channel_id=2, convener_id=3, convener_name="Ada")
    await engine.open(council.id, thread_id=4242)
    await publisher.wait_finished(council.id, timeout=120)

    sizes = [
        len(r.json.get("system", "")) // 4 + sum(len(m["content"]) // 4 for m in r.json["messages"])
        for r in provider_server.requests
    ]
    assert len(sizes) == (202 if with_memory else 201)  # a template's session ends with its minutes
    if with_memory:  # the newest past conclusions that fit, in every turn's prompt
        for request in provider_server.requests[:201]:
            text = "\n".join(m["content"] for m in request.json["messages"])
            assert "This council has met before" in text and "NEWEST-SESSION" in text
            assert "OLDEST-SESSION" not in text  # three sessions of 150 words do not fit in a third of 1,500
    assert max(sizes) <= budget
    assert sizes[200] > budget * 0.8  # the room is used, not starved
    last = provider_server.requests[200].json["messages"]
    text = "\n".join(m["content"] for m in last)
    assert "Earlier in the council, in brief:" in text and "earlier turn(s) left out for length" in text
    assert "Topic: Endless" in text and "Round 67 of 67" in text


async def _template_with_past_sessions(db: Database, seats: tuple[Seat, ...]) -> int:
    """A template with three concluded sessions whose minutes are about 150 words each."""
    template, _ = await save_template(
        db,
        guild_id=1,
        name="Endless",
        mode="round-robin",
        rounds=67,
        members=[(seat.name, seat.role) for seat in seats],
        created_by_id=3,
        created_by_name="Ada",
    )
    assert template.id is not None
    for marker in ("OLDEST-SESSION", "MIDDLE-SESSION", "NEWEST-SESSION"):
        past = await repo.create_council(
            db,
            guild_id=1,
            channel_id=2,
            topic="Endless",
            mode="round-robin",
            rounds=1,
            convener_id=3,
            convener_name="Ada",
            members=[(seat.name, seat.role) for seat in seats],
            template_id=template.id,
        )
        await repo.add_message(
            db,
            council_id=past.id,
            round_number=1,
            author_kind="ai",
            author_name="Claude",
            turn_key=MINUTES_TURN_KEY,
            content=f"{MINUTES_HEADING}\n{marker} " + "We agreed on several careful points today. " * 21,
        )
        await repo.transition_council(db, past.id, from_states=("starting",), to_state="concluded", reason="done")
    return template.id


async def test_a_line_another_process_stores_between_turns_reaches_the_next_prompts(
    engine: CouncilEngine, publisher: RecordingPublisher, provider_server: FakeProviderServer, db: Database
) -> None:
    # The runner keeps the transcript in memory between turns; a line stored through another pool (as a
    # second process would) must still reach every later prompt.
    provider_server.script("deepseek-test", delay=0.3)
    council_id = await convene(engine, rounds=2)
    other = db.twin()
    try:
        async with asyncio.timeout(5):
            while provider_server.in_flight == 0 or len(provider_server.requests) < 2:
                await asyncio.sleep(0.01)  # DeepSeek is thinking; Claude's line is in the runner's view
        await repo.add_message(
            other,
            council_id=council_id,
            round_number=1,
            author_kind="human",
            author_name="Grace",
            turn_key="human:4242",
            content="Written through another pool.",
        )
    finally:
        await other.close()
    await publisher.wait_finished(council_id)

    prompts = [prompt_text(r.json) for r in provider_server.requests]
    assert len(prompts) == 6
    assert ["Written through another pool." in prompt for prompt in prompts] == [False, False] + [True] * 4
    assert "deepseek-test reply #1" in prompts[2] and "llama-test reply #2" not in prompts[5]


async def test_a_running_council_reads_its_transcript_once_not_every_turn(
    engine: CouncilEngine, publisher: RecordingPublisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []
    read = repo.transcript

    async def counted(db: Database, council_id: int, **options: object) -> list:  # type: ignore[type-arg]
        reads.append(council_id)
        return await read(db, council_id, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(repo, "transcript", counted)
    council_id = await convene(engine, rounds=3)
    await publisher.wait_finished(council_id)
    assert len(publisher.transcript(council_id)) == 9
    # At the start (lines to post after a restart), for the first turn, and at the end (the same check).
    assert reads.count(council_id) <= 3
