"""The councils MCP tool server: search and read a server's earlier councils, only what the asking council's
convener may read. Through the SDK's in-process client, on SQLite and (with TEST_POSTGRES_URL) PostgreSQL.

The asking council reaches a tool in the request's `_meta`: `Client.call_tool(..., meta={...})` sends it and
the tool reads it from `Context.request_context.meta`."""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import regex
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp_types import CallToolResult, TextContent

from bot.tools.councils import COUNCIL_META_KEY, councils_server
from storage import repository as repo
from storage import search_repository as search_repo
from storage.database import Database
from storage.report_repository import ReadableCouncils
from storage.search_repository import SearchHit
from storage.template_repository import MINUTES_TURN_KEY
from tests.test_storage import BIG_ID

ROOT = Path(__file__).resolve().parent.parent
GUILD, ELSEWHERE = BIG_ID, BIG_ID + 500
PUBLIC, OTHER, STAFF = BIG_ID + 1, BIG_ID + 2, BIG_ID + 3  # the convener reads the first two
NOT_READABLE = "Council #{} does not exist or this council's convener cannot read it."
_keys = itertools.count()


async def council(
    db: Database,
    channel_id: int,
    *,
    guild_id: int = GUILD,
    topic: str = "Quorum rules",
    members: tuple[tuple[str, str | None], ...] = (("Claude", "the Coordinator"), ("Llama", None)),
) -> int:
    made = await repo.create_council(
        db,
        guild_id=guild_id,
        channel_id=channel_id,
        topic=topic,
        mode="round-robin",
        rounds=2,
        convener_id=BIG_ID + 9,
        convener_name="Ada",
        members=list(members),
    )
    assert made.id is not None
    await repo.set_council_thread(db, made.id, thread_of(made.id))
    await repo.transition_council(db, made.id, from_states=("starting",), to_state="concluded", reason="All spoke.")
    return made.id


def thread_of(council_id: int) -> int:
    return BIG_ID + 1000 + council_id


async def say(
    db: Database,
    council_id: int,
    content: str,
    *,
    kind: str = "ai",
    name: str = "Claude",
    round_number: int = 1,
    visibility: str = "visible",
    key: str | None = None,
) -> None:
    prefix = {"ai": f"ai:r{round_number}:{name}", "human": "human"}.get(kind, kind)
    await repo.add_message(
        db,
        council_id=council_id,
        round_number=round_number,
        author_kind=kind,
        author_name=name,
        turn_key=key or f"{prefix}:{next(_keys)}",
        content=content,
        visibility=visibility,
    )


@dataclass(frozen=True)
class World:
    db: Database
    asking: int
    older: int  # PUBLIC, with minutes and lines of every visibility
    other_channel: int
    busy: int  # OTHER, more matching lines than one council may show
    staff: int
    hidden: int  # PUBLIC, in a private thread the convener is not in
    foreign: int  # another server, in a channel with PUBLIC's id
    plain: int  # PUBLIC, no minutes: its final round concludes it

    @property
    def reads(self) -> ReadableCouncils:
        return ReadableCouncils(frozenset({PUBLIC, OTHER}), frozenset({thread_of(self.hidden)}))

    async def readable(self, council_id: int) -> tuple[int, ReadableCouncils] | None:
        return (GUILD, self.reads) if council_id == self.asking else None

    async def call(self, tool: str, arguments: dict[str, Any], *, meta: dict[str, Any] | None = None) -> CallToolResult:
        async with Client(councils_server(self.db, self.readable)) as client:
            return await client.call_tool(tool, arguments, meta=meta if meta is not None else self.asked)

    @property
    def asked(self) -> dict[str, Any]:
        return {COUNCIL_META_KEY: self.asking}


async def build_world(db: Database) -> World:
    older = await council(db, PUBLIC)
    await say(db, older, "Quorum is two thirds of the seated members.")
    await say(db, older, "I say the QUORUM should be half.", kind="human", name="Ada")
    await say(db, older, "quorum HELD-SECRET", visibility="held")
    await say(db, older, "quorum WITHHELD-SECRET", visibility="withheld")
    await say(db, older, "quorum PRIVATE-NOTE", kind="human", name="Ada", visibility="private")
    await say(db, older, "quorum BALLOT-RECORD", key="review:r1:Claude", visibility="record")
    await say(db, older, "quorum STREAMING-HALF", round_number=2, visibility="streaming")
    await say(db, older, "quorum SYSTEM-NOTICE", kind="system", name="council")
    await say(db, older, "quorum TOOL-LINE", kind="tool")
    await say(db, older, "📜 **Minutes of this session**\nWe agreed the quorum is two thirds.", key=MINUTES_TURN_KEY)
    other_channel = await council(db, OTHER, topic="Budget")
    await say(db, other_channel, "The quorum question came up in the other channel.")
    busy = await council(db, OTHER, topic="Long talk")
    for number in range(5):
        await say(db, busy, f"quorum again, time {number}", name=f"M{number}")
    staff = await council(db, STAFF)
    await say(db, staff, "quorum STAFF-SECRET")
    hidden = await council(db, PUBLIC)
    await say(db, hidden, "quorum HIDDEN-SECRET")
    foreign = await council(db, PUBLIC, guild_id=ELSEWHERE)
    await say(db, foreign, "quorum FOREIGN-SECRET")
    plain = await council(db, PUBLIC, topic="Plain")
    await say(db, plain, "Round one: FIRST-WORDS.", round_number=1)
    await say(db, plain, "Round two from Claude: we settle on ballots.", round_number=2)
    await say(db, plain, "Round two from Llama: agreed.", name="Llama", round_number=2)
    await say(db, plain, "Round two HELD-LAST", name="Llama", round_number=2, visibility="held")
    asking = await council(db, PUBLIC, topic="Asking")
    await say(db, asking, "quorum ASKING-ITSELF")
    return World(db, asking, older, other_channel, busy, staff, hidden, foreign, plain)


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def councils_in(text: str) -> list[int]:
    return [int(found) for found in re.findall(r"^Council #(\d+) ", text, re.MULTILINE)]


async def test_search_shows_only_lines_the_convener_could_read_in_their_threads(db: Database) -> None:
    world = await build_world(db)
    result = await world.call("search_councils", {"query": "QuOrUm", "limit": 10})
    text = text_of(result)
    assert not result.is_error, text
    found = councils_in(text)
    assert set(found) == {world.older, world.other_channel, world.busy}
    for secret in ("SECRET", "PRIVATE", "RECORD", "STREAMING", "SYSTEM", "TOOL-LINE", "ASKING"):
        assert secret not in text
    assert "We agreed the quorum is two thirds." in text  # the minutes
    assert f'Council #{world.older} "Quorum rules" (' in text and ", concluded), round 1, Ada (human): " in text

    hits = await search_repo.search_lines(db, GUILD, world.reads, "quorum", exclude_council_id=world.asking, limit=100)
    assert [hit.council_id for hit in hits] == [world.busy] * 3 + [world.other_channel] + [world.older] * 3
    assert [hit.snippet for hit in hits if hit.council_id == world.busy] == [
        f"quorum again, time {n}" for n in range(3)
    ]
    assert hits[4].snippet.startswith("📜 **Minutes of this session** We agreed")  # a council's conclusion first
    limited = await search_repo.search_lines(db, GUILD, world.reads, "quorum", exclude_council_id=None, limit=2)
    assert [hit.council_id for hit in limited] == [world.asking, world.busy]  # not excluded: found (newest)


async def test_search_limit_is_clamped_and_counts_lines(db: Database) -> None:
    world = await build_world(db)
    for _ in range(4):
        crowded = await council(db, OTHER, topic="Ballots")
        for number in range(4):
            await say(db, crowded, f"ballot number {number}")
    assert len(councils_in(text_of(await world.call("search_councils", {"query": "ballot", "limit": 50})))) == 10
    assert len(councils_in(text_of(await world.call("search_councils", {"query": "ballot", "limit": 0})))) == 1
    assert len(councils_in(text_of(await world.call("search_councils", {"query": "ballot"})))) == 5
    everything = await search_repo.search_lines(db, GUILD, world.reads, "ballot", exclude_council_id=None, limit=100)
    assert len(everything) == 4 * 3 + 1  # three per council, and the plain council's "ballots"


async def test_like_wildcards_and_the_escape_character_are_matched_literally(db: Database) -> None:
    world = await build_world(db)
    literal = await council(db, PUBLIC, topic="Literal")
    await say(db, literal, "growth of 100% yearly, snake_case names, path C:\\temp")
    decoy = await council(db, PUBLIC, topic="Decoy")
    await say(db, decoy, "growth of 1000 yearly, snakeXcase names, path C:temp, and xy")
    for query in ("0% y", "e_c", ":\\t", "%", "_", "\\"):
        hits = await search_repo.search_lines(db, GUILD, world.reads, query, exclude_council_id=None, limit=10)
        assert [hit.council_id for hit in hits] == [literal], query
    result = await world.call("search_councils", {"query": "%_"})
    assert not result.is_error and text_of(result) == 'No earlier council mentions "%_".'


async def test_read_council_gives_the_record_and_refuses_alike_what_is_missing_or_unreadable(db: Database) -> None:
    world = await build_world(db)
    result = await world.call("read_council", {"council_id": world.older})
    text = text_of(result)
    assert not result.is_error, text
    assert text.startswith(f'Council #{world.older}: "Quorum rules"\nHeld ')
    assert "concluded: All spoke." in text and "Mode: round-robin, 2 rounds." in text
    assert "Members: Claude (the Coordinator), Llama." in text
    assert "Conclusion, the session's minutes by Claude:\n📜 **Minutes of this session**\nWe agreed" in text
    assert "SECRET" not in text

    plain = text_of(await world.call("read_council", {"council_id": world.plain}))
    assert "Conclusion, what the members said in the last round (round 2):" in plain
    assert "Claude: Round two from Claude: we settle on ballots.\nLlama: Round two from Llama: agreed." in plain
    assert "FIRST-WORDS" not in plain and "HELD-LAST" not in plain

    missing = max(world.asking, world.foreign) + 100
    for council_id in (world.staff, world.hidden, world.foreign, missing, 0, -1, 2**40):
        refused = await world.call("read_council", {"council_id": council_id})
        assert refused.is_error and text_of(refused) == NOT_READABLE.format(council_id)


async def test_a_conclusion_is_capped(db: Database) -> None:
    world = await build_world(db)
    talkative = await council(db, PUBLIC, members=tuple((f"M{n}", None) for n in range(8)))
    for number in range(8):
        await say(db, talkative, f"M{number} " + "words " * 500, name=f"M{number}", round_number=2)
    record = await search_repo.council_record(db, GUILD, world.reads, talkative)
    assert record is not None and not record.minutes
    assert sum(len(line.content) for line in record.conclusion) <= search_repo.CONCLUSION_CHARS
    assert record.conclusion[-1].author_name == "M7" and record.conclusion[-1].content.endswith("words ")
    assert record.conclusion[0].content.endswith("…")  # the oldest kept, clipped
    assert await search_repo.council_record(db, ELSEWHERE, world.reads, talkative) is None


async def test_tools_refuse_a_request_that_does_not_say_which_known_council_asks(db: Database) -> None:
    world = await build_world(db)
    for meta in ({}, {COUNCIL_META_KEY: world.older}, {COUNCIL_META_KEY: True}, {COUNCIL_META_KEY: str(world.asking)}):
        for tool, arguments in (
            ("search_councils", {"query": "quorum"}),
            ("read_council", {"council_id": world.older}),
        ):
            result = await world.call(tool, arguments, meta=meta)
            assert result.is_error and "does not say which council asks" in text_of(result), (meta, tool)
    for query in ("q", "q" * 201):
        result = await world.call("search_councils", {"query": query})
        assert result.is_error and text_of(result) == f"The query must be 2 to 200 characters long, not {len(query)}."


async def test_tools_are_declared_read_only_and_idempotent(db: Database) -> None:
    world = await build_world(db)
    async with Client(councils_server(db, world.readable)) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == {"search_councils", "read_council"}
    for tool in tools.values():
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is True and tool.annotations.idempotent_hint is True
    assert "council_id" in tools["read_council"].input_schema["properties"]
    assert "ctx" not in tools["search_councils"].input_schema["properties"]


def test_snippets_are_cut_between_graphemes_around_the_first_match() -> None:
    family, flag = "👨‍👩‍👧", "🇫🇷"
    content = family * 200 + " Needle  in\nthe haystack " + flag * 200
    cut = search_repo.snippet(content, "needle")
    assert cut.startswith("…") and cut.endswith("…") and "Needle in the haystack" in cut
    assert set(regex.findall(r"\X", cut.strip("…"))) <= {family, flag, " ", *"Needle in the haystack"}
    assert 250 <= len(cut) <= 330
    assert search_repo.snippet("short  line\n", "zz") == "short line"
    assert search_repo.clip(family * 5, 9) == family + "…"


# -- the property: whatever the query ---------------------------------------------------------------------------

CORPUS = (
    "The quorum is two thirds of the seated members.",
    "Ünïcödé façade: naïve café, STRASSE und Straße.",
    "日本語のテキストと絵文字 👨‍👩‍👧 family 🇫🇷 flag",
    "Ελληνικά: ΣΊΣΥΦΟΣ σίσυφος",
    "Math: 100% of 50_000 items cost $5; C:\\temp\\x_y",
    "Zalgo: Z̸̢a̵l̶g̷o̴ text with combining marks",
    "ﬁne ligature, İstanbul and ı, Kelvin K",
    "tabs\tand\nnewlines\r\nmixed  spaces",
    "RTL: שלום עולם مرحبا بالعالم",
)


@dataclass(frozen=True)
class Corpus:
    world: World
    lines: dict[int, str]  # readable council -> its one line


async def corpus_of(db: Database) -> Corpus:
    world = await build_world(db)
    lines: dict[int, str] = {}
    for line in CORPUS:
        readable = await council(db, OTHER, topic="Corpus")
        await say(db, readable, line)
        lines[readable] = line
        for channel, guild in ((STAFF, GUILD), (PUBLIC, ELSEWHERE)):  # copies nobody here may read
            await say(db, await council(db, channel, guild_id=guild), line)
        await say(db, world.asking, line)
    return Corpus(world, lines)


_corpora: dict[tuple[str, str | None], Corpus] = {}


def substrings() -> st.SearchStrategy[str]:
    recased: list[Callable[[str], str]] = [str, str.upper, str.lower, str.swapcase]
    return st.sampled_from(CORPUS).flatmap(
        lambda line: st.builds(
            lambda start, size, case: case(line[start : start + size]),
            st.integers(0, len(line) - 2),
            st.integers(2, 40),
            st.sampled_from(recased),
        )
    )


def folded(text: str) -> str:
    """Each character lowercased to one character, as SQL's per-character folding does."""
    return "".join(char.lower()[:1] for char in text)


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.one_of(st.text(min_size=2, max_size=200), substrings()).filter(lambda q: 2 <= len(q) <= 200))
async def test_any_query_searches_without_error_and_finds_only_what_it_says(db: Database, query: str) -> None:
    # Built once per database (Hypothesis runs the body once per query on the same fixture).
    where = (db.url, db.schema)  # each test's database is a new file or schema
    corpus = _corpora.get(where) or _corpora.setdefault(where, await corpus_of(db))
    world = corpus.world
    result = await world.call("search_councils", {"query": query, "limit": 10})
    assert not result.is_error, text_of(result)
    hits: list[SearchHit] = await search_repo.search_lines(
        db, GUILD, world.reads, query, exclude_council_id=world.asking, limit=10
    )
    note(repr(hits))
    event("found" if hits else "found nothing")
    assert councils_in(text_of(result)) == [hit.council_id for hit in hits]
    readable = {*corpus.lines, world.older, world.other_channel, world.busy, world.plain}
    assert {hit.council_id for hit in hits} <= readable
    for hit in hits:
        source = corpus.lines.get(hit.council_id)
        if source is not None and (query.isascii() or db.is_sqlite):
            assert folded(query) in folded(source)
    if "\x00" not in query and any(query in line for line in corpus.lines.values()):
        assert any(hit.council_id in corpus.lines for hit in hits)  # what is there verbatim is found


# -- python -m bot.tools.councils ----------------------------------------------------------------------------


async def test_the_server_runs_for_other_mcp_clients_over_stdio(sqlite_db: Database) -> None:
    world = await build_world(sqlite_db)
    command = [
        *("-m", "bot.tools.councils", "--database-url", sqlite_db.url),
        *("--guild", str(GUILD), "--channels", f"{PUBLIC},{OTHER}", "--hidden-threads", str(thread_of(world.hidden))),
    ]
    async with Client(StdioServerParameters(command=sys.executable, args=command, cwd=ROOT)) as client:
        result = await client.call_tool("search_councils", {"query": "quorum", "limit": 10})
        refused = await client.call_tool("read_council", {"council_id": world.staff})
    assert set(councils_in(text_of(result))) == {world.older, world.other_channel, world.busy, world.asking}
    assert refused.is_error
