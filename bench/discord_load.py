"""Figure 9, what a council costs Discord: requests per AI message (streaming off and on), and how soon a streamed
reply's first words are visible.

The real bot runs in the tests' Discord harness; every REST request it makes (webhook executes and edits, the
bot's own messages, starter edits, typing, thread creation; interaction answers aside) is counted from the
harness's route log. Replies are about 175 words of prose, streamed one word per chunk.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from pathlib import Path
from typing import Any

import pytest

from bench.report import Figure
from bench.rig import bench_catalog, bench_settings, database, members, prose_words
from bot.app import CouncilBot
from storage import governance_repository as gov
from storage import report_repository as reports_repo
from storage import repository as repo
from tests.fakes.provider_server import FakeProviderServer
from tests.harness import DiscordHarness
from tests.harness.rate_limits import GLOBAL_LIMIT, RateLimits

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
            settings = bench_settings(workdir, councils)
            harness = await DiscordHarness.start(
                CouncilBot(settings, bench_catalog(server.base_url, seated), db), monkeypatch, settle_timeout=300
            )
            shown = _time_posts(harness, monkeypatch)
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


# -- many councils against Discord's limits --------------------------------------------------------------------

SCALE_WORDS = 40


async def discord_at_scale(
    workdir: Path, *, councils: int = 500, seats: int = 4, per_channel: int = 10
) -> list[Figure]:
    """`councils` councils of `seats` members, one round, streaming on, over `councils // per_channel` channels,
    convened at once against the fake Discord over HTTP with Discord's rate limits modelled: the 429s Discord
    answered, how much of the global budget the bot used while demand exceeded it, and how soon streamed words
    showed under that load."""
    seated = members(seats)
    monkeypatch = pytest.MonkeyPatch()
    server = FakeProviderServer()
    await server.start()
    chunk_delay = 0.02
    limits = RateLimits()
    try:
        for member in seated:
            server.script(member.model, prose_words(SCALE_WORDS), chunk_delay=chunk_delay)
        async with database("sqlite", workdir) as db:
            settings = bench_settings(
                workdir,
                councils,
                provider_timeout=600,
                provider_max_concurrency=councils,  # one fake endpoint stands for many providers
            )
            harness = await DiscordHarness.start(
                CouncilBot(settings, bench_catalog(server.base_url, seated), db),
                monkeypatch,
                settle_timeout=900,
                http=True,
                rate_limits=limits,
            )
            shown = _time_posts(harness, monkeypatch)
            try:
                await gov.update_guild_settings(db, harness.guild.id, policy_mode="notify")
                channels = [harness.channel] + [
                    harness.add_channel(f"council-{n}") for n in range(1, max(1, councils // per_channel))
                ]
                started = time.perf_counter()
                for number in range(councils):
                    await harness.slash(
                        harness.members["convener"],
                        "council",
                        "convene",
                        channel=channels[number % len(channels)],
                        topic=f"Question {number + 1}: should our city replace its parking lots with parks?",
                        members=", ".join(member.name for member in seated),
                        rounds=1,
                        wait_background=False,
                    )
                convened_at = limits.now()
                expected = councils * seats
                async with asyncio.timeout(900):
                    # The fake Discord offers no event to wait on; the poll is bounded by the timeout.
                    while await _final_lines(db) < expected:  # noqa: ASYNC110
                        await asyncio.sleep(0.5)
                wall = time.perf_counter() - started
                lines = [
                    line
                    for council_id in range(1, councils + 1)
                    for line in await repo.transcript(db, council_id)
                    if line.author_kind == "ai" and line.visibility == "visible"
                ]
                first_words = _first_words(lines, server, shown, chunk_delay)
                usage = _busy_usage(limits)
                stats = harness.bot.get_cog("CouncilCog").budget.stats  # type: ignore[union-attr]
                await harness.settle(timeout=600)  # the starter embeds' last edits, paced per channel
            finally:
                await harness.close()
    finally:
        monkeypatch.undo()
        await server.stop()
    common = {"councils": councils, "members": seats, "channels": len(channels), "wall_s": wall}
    return [
        Figure(
            "discord_429s",
            limits.count_429s(),
            "responses",
            0,
            extra={
                **common,
                "requests": len(limits.requests),
                "invalid_requests": limits.invalid_requests,
                "limited": sorted({f"{seen.method} {seen.route} ({seen.scope})" for seen in limits.rate_limited}),
                "limited_while_convening": sum(seen.at <= convened_at for seen in limits.rate_limited),
                "budget": {
                    "released": stats.sent,
                    "skipped": stats.skipped,
                    "started_unbudgeted": stats.unbudgeted,
                    "started_late": stats.late,
                },
                "detail": "429s the fake Discord answered (its model of Discord's rate limits, over HTTP, "
                "through discord.py's own request code), streaming on, every council convened at once",
            },
        ),
        Figure(
            "discord_global_utilisation",
            usage["ratio"],
            "ratio",
            0.9,
            cmp=">=",
            extra={
                **common,
                "requests_per_s": usage["per_second"],
                "busy_s": usage["seconds"],
                "detail": "requests the bot made per second while its demand exceeded the global budget (the busy "
                "middle of the run: 10th to 90th percentile of its requests), ÷ Discord's 50; interaction answers "
                "aside",
            },
        ),
        Figure(
            "first_words_visible_ms_p50_at_scale",
            statistics.median(first_words) if first_words else None,
            "ms",
            extra={
                **common,
                "p99": _percentile(first_words, 99),
                "samples": len(first_words),
                "detail": "the same run: from a member's first streamed token to the Discord message showing it",
            },
        ),
    ]


def _time_posts(harness: DiscordHarness, monkeypatch: pytest.MonkeyPatch) -> dict[int, float]:
    """When each message was created in the fake Discord, by id."""
    shown: dict[int, float] = {}
    create = harness.server.create_message

    def timed(*args: Any, **kwargs: Any) -> Any:
        payload, post = create(*args, **kwargs)
        shown[post.message_id] = time.monotonic()
        return payload, post

    monkeypatch.setattr(harness.server, "create_message", timed)
    return shown


async def _final_lines(db: Any) -> int:
    """Member replies shown in full (their final words confirmed in Discord)."""
    return await reports_repo.posted_member_lines(db)


def _first_words(
    lines: list[Any], server: FakeProviderServer, shown: dict[int, float], chunk_delay: float
) -> list[float]:
    """Milliseconds from each reply's first streamed chunk to its first Discord message."""
    by_council: dict[int, list[Any]] = {}
    for request in server.requests:
        by_council.setdefault(_council_of(request.json), []).append(request)
    first = []
    for line in lines:
        requests = [r for r in by_council.get(line.council_id, []) if r.model and line.author_name.lower() in r.model]
        if requests and line.discord_ids and line.discord_ids[0] in shown:
            first.append((shown[line.discord_ids[0]] - (requests[0].started + chunk_delay)) * 1000)
    return first


def _council_of(body: Any) -> int:
    match = re.search(r"Question (\d+):", str(body))
    return int(match.group(1)) if match else 0


def _busy_usage(limits: RateLimits) -> dict[str, float]:
    served = sorted(seen.at for seen in limits.requests if not seen.limited and seen.global_key is not None)
    if len(served) < 20:
        return {"ratio": 0.0, "per_second": 0.0, "seconds": 0.0}
    start, end = served[len(served) // 10], served[len(served) * 9 // 10]
    per_second = (len(served) * 8 // 10) / (end - start) if end > start else 0.0
    return {"ratio": per_second / GLOBAL_LIMIT, "per_second": per_second, "seconds": end - start}


def _percentile(values: list[float], pct: int) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]
