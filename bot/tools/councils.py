"""The project's own MCP tool server, "councils": a council's members look up what this Discord server's
earlier councils said and concluded, with no internet.

A council is as private as its Discord channel, so the tools answer only with what the asking council's
convener could read there. Which council asks is never an argument a model could forge: the bot's tool layer
puts its id in the request's `_meta` under COUNCIL_META_KEY, and `readable` (the Discord side) says what its
convener may read. Run on its own (`python -m bot.tools.councils`), it serves other MCP clients over stdio
what the given channels of one server hold.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from storage import search_repository as search_repo
from storage.database import Database
from storage.report_repository import ReadableCouncils
from storage.search_repository import CouncilRecord, SearchHit

COUNCIL_META_KEY = "ai-council/council"
QUERY_CHARS = (2, 200)
HITS = (1, 10)
TOPIC_CHARS = 120  # of each hit's topic: the snippet is what was searched for

SEARCH_DESCRIPTION = (
    "Search the transcripts and minutes of this Discord server's earlier councils that this council's "
    "convener can read. Case-insensitive, literal text (no wildcards). Returns the matching lines, newest "
    "council first, with each council's number for read_council."
)
READ_DESCRIPTION = (
    "Read the record of one of this Discord server's earlier councils that this council's convener can read: "
    "its topic, dates, state, members and roles, and its conclusion (its minutes, or its final round)."
)
NO_ASKER = "This tool answers the councils of this bot only, and this request does not say which council asks."
READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True)

# (the server, what the asker may read there, the council to leave out of searches)
Asker = tuple[int, ReadableCouncils, int | None]


def councils_server(
    db: Database, readable: Callable[[int], Awaitable[tuple[int, ReadableCouncils] | None]]
) -> MCPServer:
    """The tool server for the bot's councils: `readable(asking_council_id)` gives the council's server and
    what its convener may read, or None for a council it does not know (then the tools refuse)."""

    async def asker(ctx: Context) -> Asker | None:
        council_id = asking_council(ctx)
        if council_id is None:
            return None
        found = await readable(council_id)
        if found is None:
            return None
        guild_id, councils = found
        return guild_id, councils, council_id  # its members see it already

    return _server(db, asker)


def standalone_server(db: Database, guild_id: int, readable: ReadableCouncils) -> MCPServer:
    """The tool server for another MCP client: whoever connects reads what `readable` names, in one server."""

    async def asker(ctx: Context) -> Asker | None:
        return guild_id, readable, None

    return _server(db, asker)


def asking_council(ctx: Context) -> int | None:
    """The council the bot's tool layer says is asking, from the request's `_meta`."""
    meta = ctx.request_context.meta or {}
    council_id = meta.get(COUNCIL_META_KEY)
    # bool is an int to Python, never a council id.
    return council_id if isinstance(council_id, int) and not isinstance(council_id, bool) else None


def _server(db: Database, asker: Callable[[Context], Awaitable[Asker | None]]) -> MCPServer:
    server = MCPServer("councils")

    @server.tool(description=SEARCH_DESCRIPTION, annotations=READ_ONLY)
    async def search_councils(
        query: Annotated[str, Field(description="The words to look for, 2 to 200 characters.")],
        ctx: Context,
        limit: Annotated[int, Field(description="How many lines at most (1 to 10).")] = 5,
    ) -> CallToolResult:
        who = await asker(ctx)
        if who is None:
            return _error(NO_ASKER)
        if not QUERY_CHARS[0] <= len(query) <= QUERY_CHARS[1]:
            return _error(f"The query must be {QUERY_CHARS[0]} to {QUERY_CHARS[1]} characters long, not {len(query)}.")
        guild_id, readable, exclude = who
        hits = await search_repo.search_lines(
            db, guild_id, readable, query, exclude_council_id=exclude, limit=min(max(limit, HITS[0]), HITS[1])
        )
        if not hits:
            return _text(f'No earlier council mentions "{query}".')
        return _text("\n\n".join(hit_text(hit) for hit in hits))

    @server.tool(description=READ_DESCRIPTION, annotations=READ_ONLY)
    async def read_council(
        council_id: Annotated[int, Field(description="The council's number, as search_councils shows it.")],
        ctx: Context,
    ) -> CallToolResult:
        who = await asker(ctx)
        if who is None:
            return _error(NO_ASKER)
        guild_id, readable, _ = who
        record = await search_repo.council_record(db, guild_id, readable, council_id)
        if record is None:
            # One answer for both: telling them apart would tell that a council exists.
            return _error(f"Council #{council_id} does not exist or this council's convener cannot read it.")
        return _text(record_text(record))

    return server


def hit_text(hit: SearchHit) -> str:
    who = hit.author_name if hit.author_kind == "ai" else f"{hit.author_name} (human)"
    return (
        f'Council #{hit.council_id} "{search_repo.clip(hit.topic, TOPIC_CHARS)}" ({_day(hit.created_at)}, '
        f"{hit.state}), round {hit.round}, {who}: {hit.snippet}"
    )


def record_text(record: CouncilRecord) -> str:
    held = _day(record.created_at) + (f" to {_day(record.ended_at)}" if record.ended_at else "")
    state = record.state + (f": {record.end_reason}" if record.end_reason else "")
    members = ", ".join(
        member.name
        + (f" ({member.role})" if member.role else "")
        + (" [dismissed]" if member.dismissed else " [benched]" if member.benched else "")
        for member in record.members
    )
    out = [
        f'Council #{record.council_id}: "{record.topic}"',
        f"Held {held}; {state}.",
        f"Mode: {record.mode}, {record.rounds} round{'s' if record.rounds != 1 else ''}.",
        f"Members: {members or 'none'}.",
    ]
    if not record.conclusion:
        out.append("Conclusion: none; no member spoke.")
    elif record.minutes:
        line = record.conclusion[0]
        out.append(f"Conclusion, the session's minutes by {line.author_name}:\n{line.content}")
    else:
        out.append(f"Conclusion, what the members said in the last round (round {record.conclusion[0].round}):")
        out.extend(f"{line.author_name}: {line.content}" for line in record.conclusion)
    return "\n".join(out)


def _day(moment: datetime) -> str:
    """The UTC date of a stored time (SQLite gives them back without a zone; they are UTC)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return f"{aware.astimezone(UTC):%Y-%m-%d}"


def _text(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)])


def _error(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


# -- python -m bot.tools.councils ---------------------------------------------------------------------------


def _ids(text: str) -> frozenset[int]:
    return frozenset(int(part) for part in text.split(",") if part.strip())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bot.tools.councils",
        description="Serve the councils tools over stdio for one Discord server's councils in the given channels.",
    )
    # From the environment by default: a password in the arguments shows in every process list.
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"), help="default: $DATABASE_URL")
    parser.add_argument("--guild", type=int, required=True, help="the Discord server's id")
    parser.add_argument("--channels", type=_ids, required=True, help="the readable channels' ids, comma-separated")
    parser.add_argument("--hidden-threads", type=_ids, default=frozenset(), help="private threads to leave out")
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("--database-url or DATABASE_URL is required")
    anyio.run(_serve, args.database_url, args.guild, ReadableCouncils(args.channels, args.hidden_threads))


async def _serve(url: str, guild_id: int, readable: ReadableCouncils) -> None:
    db = Database(url)
    try:
        await standalone_server(db, guild_id, readable).run_stdio_async()
    finally:
        await db.close()


if __name__ == "__main__":
    main()
