"""Figure 9, what a council costs Discord: requests per AI message (streaming off and on), and how soon a streamed
reply's first words are visible.

The real bot runs in the tests' Discord harness; every REST request it makes (webhook executes and edits, the
bot's own messages, starter edits, typing, thread creation; interaction answers aside) is counted from the
harness's route log. Replies are about 175 words of prose, streamed one word per chunk.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import pytest

from bench.report import Figure
from bench.rig import bench_catalog, database, members, prose_words
from bot.app import CouncilBot
from bot.settings import Settings
from storage import governance_repository as gov
from storage import repository as repo
from tests.fakes.provider_server import FakeProviderServer
from tests.harness import DiscordHarness

WORDS = 175


async def discord_costs(workdir: Path, *, councils: int = 3, seats: int = 3, rounds: int = 2) -> list[Figure]:
    whole = await _run(workdir, councils, seats, rounds, streaming=False)
    streamed = await _run(workdir, councils, seats, rounds, streaming=True)
    figures = []
    for name, run in (("off", whole), ("on", streamed)):
        figures.append(
            Figure(
                f"discord_requests_per_ai_message_streaming_{name}",
                run["requests"] / run["messages"],
                "requests",
                extra={
                    "ai_messages": run["messages"],
                    "requests": run["requests"],
                    "lower_bound": run["chunks"] / run["messages"],
                    "by_route": run["by_route"],
                    "detail": f"{councils} councils of {seats} members, {rounds} rounds, replies of {WORDS} words: "
                    f"REST requests to Discord (interaction answers aside) per member message, streaming {name}; "
                    "lower_bound: the Discord messages a reply needs",
                },
            )
        )
    first = streamed["first_words_ms"]
    figures.append(
        Figure(
            "first_words_visible_ms_p50",
            statistics.median(first) if first else None,
            "ms",
            300,
            extra={
                "p99": max(first) if first else None,
                "samples": len(first),
                "load": "light",
                "detail": "streaming on, one council at a time: from a member's first streamed token (the fake "
                "provider's first chunk) to the Discord message that shows it",
            },
        )
    )
    return figures


async def _run(workdir: Path, councils: int, seats: int, rounds: int, *, streaming: bool) -> dict[str, Any]:
    seated = members(seats)
    monkeypatch = pytest.MonkeyPatch()
    server = FakeProviderServer()
    await server.start()
    chunk_delay = 0.01 if streaming else 0.0
    try:
        for member in seated:
            server.script(member.model, prose_words(WORDS), chunk_delay=chunk_delay)
        async with database("sqlite", workdir) as db:
            settings = Settings(
                discord_token="unused",
                database_url="sqlite://",
                members_file=workdir / "members.toml",
                provider_timeout=60,
                log_level="WARNING",
                peer_ratings=False,
                max_councils_per_user=councils,
                max_convenes_per_hour=councils,
            )
            harness = await DiscordHarness.start(
                CouncilBot(settings, bench_catalog(server.base_url, seated), db), monkeypatch, settle_timeout=300
            )
            shown: dict[int, float] = {}
            create = harness.server.create_message

            def timed(*args: Any, **kwargs: Any) -> Any:
                payload, post = create(*args, **kwargs)
                shown[post.message_id] = time.monotonic()
                return payload, post

            monkeypatch.setattr(harness.server, "create_message", timed)
            try:
                if streaming:
                    await gov.update_guild_settings(db, harness.guild.id, policy_mode="notify")
                start = len(harness.router.log)
                for number in range(councils):
                    await harness.slash(
                        harness.members["convener"],
                        "council",
                        "convene",
                        topic=f"Question {number + 1}: should our city replace its parking lots with parks?",
                        members=", ".join(member.name for member in seated),
                        rounds=rounds,
                    )
                served = [
                    (method, path)
                    for method, path in harness.router.log[start:]
                    if not path.startswith("/interactions/")
                    and "/webhooks/" + str(harness.server.application_id) not in path
                ]
                lines = [
                    line
                    for council_id in range(1, councils + 1)
                    for line in await repo.transcript(db, council_id)
                    if line.author_kind == "ai" and line.visibility == "visible"
                ]
                first_words = [
                    (shown[line.discord_ids[0]] - (request.started + chunk_delay)) * 1000
                    for line, request in zip(lines, server.requests, strict=False)
                    if line.discord_ids and line.discord_ids[0] in shown
                ]
            finally:
                await harness.close()
    finally:
        monkeypatch.undo()
        await server.stop()
    by_route: dict[str, int] = {}
    for method, path in served:
        kind = _route_kind(method, path)
        by_route[kind] = by_route.get(kind, 0) + 1
    return {
        "requests": len(served),
        "messages": len(lines),
        "chunks": sum(len(line.discord_ids) for line in lines),
        "by_route": by_route,
        "first_words_ms": first_words if streaming else [],
    }


def _route_kind(method: str, path: str) -> str:
    if "/webhooks/" in path:
        return f"webhook {method}"
    if path.endswith("/typing"):
        return "typing"
    if path.endswith("/threads"):
        return "thread"
    if "/messages" in path:
        return f"bot message {method}"
    return f"{method} other"
