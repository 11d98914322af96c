"""Which councils one person may read, in the queries of lists: history, template list and the scoreboard
filter in SQL, so their limits, totals and aggregates cover only what the person may see. On SQLite and (with
TEST_POSTGRES_URL) PostgreSQL."""

from __future__ import annotations

from storage import ratings_repository as ratings_repo
from storage import report_repository as reports_repo
from storage import repository as repo
from storage import template_repository as templates_repo
from storage.database import Database
from storage.report_repository import ReadableCouncils
from tests.test_ratings_storage import rate
from tests.test_storage import BIG_ID

PUBLIC, STAFF = BIG_ID + 1, BIG_ID + 2  # two channels of the server


async def council(
    db: Database, channel_id: int, *, thread: bool = True, template_id: int | None = None, guild_id: int = BIG_ID
) -> int:
    made = await repo.create_council(
        db,
        guild_id=guild_id,
        channel_id=channel_id,
        topic=f"in {channel_id}",
        mode="round-robin",
        rounds=1,
        convener_id=BIG_ID + 9,
        convener_name="Ada",
        members=[("Claude", None), ("Llama", None)],
        template_id=template_id,
    )
    assert made.id is not None
    if thread:
        await repo.set_council_thread(db, made.id, BIG_ID + 1000 + made.id)
    await repo.transition_council(db, made.id, from_states=("starting",), to_state="concluded")
    return made.id


def thread_of(council_id: int) -> int:
    return BIG_ID + 1000 + council_id


async def test_a_servers_council_channels_and_council_threads_are_found_without_reading_councils(
    db: Database,
) -> None:
    first, _, third = await council(db, PUBLIC), await council(db, STAFF), await council(db, PUBLIC)
    await council(db, BIG_ID + 3, guild_id=BIG_ID + 50)
    assert await reports_repo.council_channels(db, BIG_ID) == {PUBLIC, STAFF}
    among = [thread_of(first), thread_of(third), BIG_ID + 777]
    assert await reports_repo.council_threads_among(db, BIG_ID, among) == {thread_of(first), thread_of(third)}
    assert await reports_repo.council_threads_among(db, BIG_ID + 50, among) == set()
    assert await reports_repo.council_threads_among(db, BIG_ID, []) == set()


async def test_history_and_template_counts_leave_out_councils_one_cannot_read(db: Database) -> None:
    template, _ = await templates_repo.save_template(
        db,
        guild_id=BIG_ID,
        name="Board",
        mode="round-robin",
        rounds=1,
        members=[("Claude", None)],
        created_by_id=BIG_ID + 9,
        created_by_name="Ada",
    )
    assert template.id is not None
    public = await council(db, PUBLIC, template_id=template.id)
    staff = await council(db, STAFF, template_id=template.id)
    private = await council(db, PUBLIC, template_id=template.id)  # its thread is private
    no_thread = await council(db, PUBLIC, thread=False)

    everyone = ReadableCouncils(frozenset({PUBLIC}), frozenset({thread_of(private)}))
    sessions, total = await templates_repo.list_sessions(db, BIG_ID, limit=1, readable=everyone)
    assert [c.id for c in sessions] == [no_thread] and total == 2  # no_thread, public
    sessions, total = await templates_repo.list_sessions(db, BIG_ID, template_id=template.id, readable=everyone)
    assert [c.id for c in sessions] == [public] and total == 1
    [listed] = await templates_repo.list_templates(db, BIG_ID, readable=everyone)
    assert listed.sessions == 1

    staff_view = ReadableCouncils(frozenset({PUBLIC, STAFF}))
    sessions, total = await templates_repo.list_sessions(db, BIG_ID, readable=staff_view)
    assert [c.id for c in sessions] == [no_thread, private, staff, public] and total == 4
    [listed] = await templates_repo.list_templates(db, BIG_ID, readable=staff_view)
    assert listed.sessions == 3

    nothing = ReadableCouncils(frozenset())
    assert await templates_repo.list_sessions(db, BIG_ID, readable=nothing) == ([], 0)
    [listed] = await templates_repo.list_templates(db, BIG_ID, readable=nothing)
    assert listed.sessions == 0
    # Without a filter, as before: everything.
    assert (await templates_repo.list_sessions(db, BIG_ID))[1] == 4


async def test_the_scoreboard_is_computed_over_readable_councils_only(db: Database) -> None:
    public, staff = await council(db, PUBLIC), await council(db, STAFF)
    await rate(db, public, 5, "Claude", {"Llama": (4, 4, 4)})
    await rate(db, staff, 7, "Claude", {"Llama": (1, 1, 1)})
    await rate(db, staff, 7, "Llama", {"Claude": (2, 2, 2)})

    everyone = ReadableCouncils(frozenset({PUBLIC}))
    [llama] = await ratings_repo.server_scoreboard(db, BIG_ID, readable=everyone)
    assert (llama.name, llama.councils, llama.ratings, llama.overall) == ("Llama", 1, 1, 4.0)

    staff_view = ReadableCouncils(frozenset({PUBLIC, STAFF}))
    board = await ratings_repo.server_scoreboard(db, BIG_ID, readable=staff_view)
    assert [(m.name, m.councils, m.ratings, m.overall) for m in board] == [("Llama", 2, 2, 2.5), ("Claude", 1, 1, 2.0)]
    assert board == await ratings_repo.server_scoreboard(db, BIG_ID)

    hidden_thread = ReadableCouncils(frozenset({PUBLIC, STAFF}), frozenset({thread_of(staff)}))
    assert await ratings_repo.server_scoreboard(db, BIG_ID, readable=hidden_thread) == [llama]
    assert await ratings_repo.server_scoreboard(db, BIG_ID, readable=ReadableCouncils(frozenset())) == []


async def test_a_template_session_recalls_only_the_minutes_of_sessions_held_in_its_own_channel(db: Database) -> None:
    template, _ = await templates_repo.save_template(
        db,
        guild_id=BIG_ID,
        name="Board",
        mode="round-robin",
        rounds=1,
        members=[("Claude", None)],
        created_by_id=BIG_ID + 9,
        created_by_name="Ada",
    )
    assert template.id is not None
    sessions = {}
    for name, channel_id in (("open", PUBLIC), ("staff", STAFF), ("open again", PUBLIC)):
        sessions[name] = await council(db, channel_id, template_id=template.id)
        await repo.add_message(
            db,
            council_id=sessions[name],
            round_number=1,
            author_kind="ai",
            author_name="Claude",
            turn_key=templates_repo.MINUTES_TURN_KEY,
            content=f"minutes of the {name} session",
        )
    in_public = await council(db, PUBLIC, template_id=template.id)
    in_staff = await council(db, STAFF, template_id=template.id)

    recalled = await templates_repo.previous_minutes(db, template.id, in_public, limit=5)
    assert [item.council.id for item in recalled] == [sessions["open again"], sessions["open"]]
    recalled = await templates_repo.previous_minutes(db, template.id, in_staff, limit=5)
    assert [item.council.id for item in recalled] == [sessions["staff"]]
