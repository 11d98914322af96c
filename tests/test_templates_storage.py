"""Template storage and the memory of permanent councils, on SQLite and (with TEST_POSTGRES_URL) PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from bot.catalog import Catalog
from bot.council.engine import CouncilEngine
from bot.council.memory import MINUTES_HEADING, MINUTES_INSTRUCTION
from bot.providers.pool import ProviderPool
from storage import repository as repo
from storage import template_repository as templates_repo
from storage.database import Database
from storage.template_repository import MINUTES_TURN_KEY, TemplateExists
from tests.engine_doubles import RecordingPublisher
from tests.fakes.provider_server import FakeProviderServer
from tests.test_storage import BIG_ID


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


async def save(db: Database, name: str, members: list[tuple[str, str | None]], **options: object) -> int:
    template, _ = await templates_repo.save_template(
        db,
        guild_id=int(options.get("guild_id", BIG_ID)),  # type: ignore[call-overload]
        name=name,
        mode="parallel",
        rounds=3,
        members=members,
        created_by_id=BIG_ID + 9,
        created_by_name="Ada",
        replace=bool(options.get("replace", False)),
    )
    assert template.id is not None
    return template.id


async def session_of(db: Database, template_id: int | None, topic: str = "Topic", *, state: str = "concluded") -> int:
    council = await repo.create_council(
        db,
        guild_id=BIG_ID,
        channel_id=BIG_ID + 1,
        topic=topic,
        mode="round-robin",
        rounds=1,
        convener_id=BIG_ID + 2,
        convener_name="Ada",
        members=[("Claude", None), ("Llama", None)],
        template_id=template_id,
    )
    assert council.id is not None
    await repo.set_council_thread(db, council.id, BIG_ID + 100 + council.id)
    await repo.transition_council(db, council.id, from_states=("starting",), to_state="running")
    if state != "running":
        await repo.transition_council(db, council.id, from_states=("running",), to_state=state, reason="done")
    return council.id


async def add_line(
    db: Database,
    council_id: int,
    turn_key: str,
    content: str,
    kind: str = "ai",
    author: str = "Claude",
    **extra: object,
) -> int:
    line, _ = await repo.add_message(
        db,
        council_id=council_id,
        round_number=1,
        author_kind=kind,
        author_name=author,
        turn_key=turn_key,
        content=content,
        **extra,  # type: ignore[arg-type]
    )
    assert line.id is not None
    return line.id


async def test_templates_round_trip_per_server_with_names_unique_whatever_their_case(db: Database) -> None:
    template_id = await save(db, "Weekly Review", [("Claude", "the Chair"), ("Llama", None)])
    await save(db, "weekly review", [("Llama", None)], guild_id=BIG_ID + 50)  # another server has its own names
    with pytest.raises(TemplateExists) as taken:
        await save(db, "WEEKLY REVIEW", [("Llama", None)])
    assert taken.value.existing.id == template_id

    stored = await templates_repo.get_template(db, BIG_ID, "weekly REVIEW")
    assert stored is not None and stored.template.name == "Weekly Review" and stored.template.guild_id == BIG_ID
    assert [(m.name, m.role, m.position) for m in stored.members] == [("Claude", "the Chair", 0), ("Llama", None, 1)]
    assert (stored.template.mode, stored.template.rounds, stored.template.created_by_id) == ("parallel", 3, BIG_ID + 9)

    assert await save(db, "WEEKLY review", [("Llama", "the Realist")], replace=True) == template_id
    [listed] = await templates_repo.list_templates(db, BIG_ID)
    assert listed.template.name == "WEEKLY review" and [(m.name, m.role) for m in listed.members] == [
        ("Llama", "the Realist")
    ]
    assert await templates_repo.template_names(db, BIG_ID + 50) == ["weekly review"]


async def test_deleting_a_template_keeps_its_councils_as_plain_councils(db: Database) -> None:
    template_id = await save(db, "Board", [("Claude", None)])
    first = await session_of(db, template_id)
    plain = await session_of(db, None)
    [listed] = await templates_repo.list_templates(db, BIG_ID)
    assert listed.sessions == 1
    sessions, total = await templates_repo.list_sessions(db, BIG_ID, template_id=template_id)
    assert [c.id for c in sessions] == [first] and total == 1
    everything, total = await templates_repo.list_sessions(db, BIG_ID, limit=1)
    assert [c.id for c in everything] == [plain] and total == 2

    assert await templates_repo.delete_template(db, template_id)
    assert not await templates_repo.delete_template(db, template_id)
    council = await repo.get_council(db, first)
    assert council is not None and council.template_id is None
    assert await templates_repo.get_template(db, BIG_ID, "Board") is None


async def test_previous_minutes_are_the_shown_ones_of_earlier_sessions_newest_first(db: Database) -> None:
    template_id = await save(db, "Board", [("Claude", None)])
    other_id = await save(db, "Other", [("Claude", None)])
    old = await session_of(db, template_id)
    await add_line(db, old, MINUTES_TURN_KEY, f"{MINUTES_HEADING}\nold")
    held = await session_of(db, template_id)
    await add_line(db, held, MINUTES_TURN_KEY, f"{MINUTES_HEADING}\nheld", visibility="held")
    failed = await session_of(db, template_id)
    await add_line(db, failed, MINUTES_TURN_KEY, "📜 No minutes", kind="system")
    new = await session_of(db, template_id)
    await add_line(db, new, MINUTES_TURN_KEY, f"{MINUTES_HEADING}\nnew")
    elsewhere = await session_of(db, other_id)
    await add_line(db, elsewhere, MINUTES_TURN_KEY, f"{MINUTES_HEADING}\nelsewhere")
    current = await session_of(db, template_id, state="running")

    recalled = await templates_repo.previous_minutes(db, template_id, current, limit=3)
    assert [(item.council.id, item.minutes.content) for item in recalled] == [
        (new, f"{MINUTES_HEADING}\nnew"),
        (old, f"{MINUTES_HEADING}\nold"),
    ]
    assert [item.council.id for item in await templates_repo.previous_minutes(db, template_id, new, limit=3)] == [old]


async def test_sessions_awaiting_minutes_are_concluded_spoken_and_not_yet_shown(db: Database) -> None:
    template_id = await save(db, "Board", [("Claude", None)])
    since = datetime.now(UTC) - timedelta(days=1)
    silent = await session_of(db, template_id)  # nobody spoke
    await add_line(db, silent, "failed:r1:Claude", "⚠️ could not answer", kind="system")
    unwritten = await session_of(db, template_id)
    await add_line(db, unwritten, "ai:r1:Claude", "words")
    unshown = await session_of(db, template_id)
    await add_line(db, unshown, "ai:r1:Claude", "words")
    await add_line(db, unshown, MINUTES_TURN_KEY, f"{MINUTES_HEADING}\nstored")
    shown = await session_of(db, template_id)
    await add_line(db, shown, "ai:r1:Claude", "words")
    await repo.record_posted(db, await add_line(db, shown, MINUTES_TURN_KEY, "minutes"), [BIG_ID])
    held = await session_of(db, template_id)
    await add_line(db, held, "ai:r1:Claude", "words")
    await add_line(db, held, MINUTES_TURN_KEY, "minutes", visibility="held")
    running = await session_of(db, template_id, state="running")
    await add_line(db, running, "ai:r1:Claude", "words")
    plain = await session_of(db, None)
    await add_line(db, plain, "ai:r1:Claude", "words")

    awaiting = await templates_repo.sessions_awaiting_minutes(db, since)
    assert [c.id for c in awaiting] == [unwritten, unshown]
    assert await templates_repo.sessions_awaiting_minutes(db, datetime.now(UTC) + timedelta(minutes=1)) == []


async def test_a_restart_writes_missing_minutes_once_and_shows_stored_ones_once(
    db: Database, catalog: Catalog, session: aiohttp.ClientSession, provider_server: FakeProviderServer
) -> None:
    provider_server.script("claude-test", "Agreed on parks; the budget stays open.")
    template_id = await save(db, "Board", [("Claude", None), ("Llama", None)])
    # The process stopped as these sessions ended: one before its minutes were asked for, one after they
    # were stored and before they were shown.
    unwritten = await session_of(db, template_id)
    await add_line(db, unwritten, "ai:r1:Llama", "Parks, please.", author="Llama")
    unshown = await session_of(db, template_id)
    await add_line(db, unshown, "ai:r1:Llama", "Buses, please.", author="Llama")
    await add_line(db, unshown, MINUTES_TURN_KEY, f"{MINUTES_HEADING}\nstored before the stop")

    for attempt in range(2):
        publisher = RecordingPublisher()
        engine = CouncilEngine(db, catalog, ProviderPool(session), publisher)
        assert await engine.resume_all() == []
        await engine.shutdown()
        if attempt == 0:
            assert publisher.transcript(unwritten) == [
                ("Claude", f"{MINUTES_HEADING}\nAgreed on parks; the budget stays open.")
            ]
            assert publisher.transcript(unshown) == [("Claude", f"{MINUTES_HEADING}\nstored before the stop")]
        else:
            assert publisher.posts == []  # nothing left to ask or show
    [asked] = provider_server.requests
    assert MINUTES_INSTRUCTION in asked.json["messages"][-1]["content"]
    assert '<member name="Llama">\nParks, please.\n</member>' in "\n".join(m["content"] for m in asked.json["messages"])
    minutes = await repo.get_message_by_turn(db, unwritten, MINUTES_TURN_KEY)
    assert minutes is not None and minutes.author_name == "Claude" and minutes.discord_ids
    council = await repo.get_council(db, unwritten)
    assert council is not None and council.tokens_in > 0  # what the minutes cost is counted with the council
