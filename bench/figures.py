"""The figures that run the engine with the in-process publisher (everything but the acknowledgement)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import itertools
import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from bench.report import Figure, percentile
from bench.rig import Rig, RssSampler, members, rig, rss_mb
from bot.council.engine import CouncilEngine
from bot.council.transcript_view import KEEP_LINES

WARMUP_TAG = 0  # the warm-up council's tag: its calls get no scripted latency


async def _warm_up(r: Rig) -> None:
    """One short council first, so connections, compiled SQL and imports are not billed to the figures."""
    council_id = await r.convene(WARMUP_TAG, rounds=1)
    await r.publisher.wait_finished(council_id, timeout=30)


# -- 1. rounds: parallel and round-robin against the member latencies --------------------------------------


async def round_ratios(
    workdir: Path, *, latencies: Sequence[float] = (0.2, 0.4, 0.6, 0.8), repeats: int = 1
) -> list[Figure]:
    """One round of len(latencies) members: parallel ÷ the slowest, round-robin ÷ the sum."""
    seated = members(len(latencies))
    figures = []
    tags = itertools.count(1)
    async with rig(workdir, seated=seated) as r:
        await _warm_up(r)
        for member, latency in zip(seated, latencies, strict=True):
            r.server.script(member.model, delay=latency)
        for mode, ideal, name, target, against in (
            ("parallel", max(latencies), "parallel_round_ratio", 1.10, "the slowest member's latency"),
            ("round-robin", sum(latencies), "round_robin_ratio", 1.05, "the sum of the members' latencies"),
        ):
            walls = []
            for repeat in range(repeats):
                council_id = await r.create(next(tags), rounds=1, mode=mode)
                started = time.perf_counter()
                await r.open(council_id)
                await r.publisher.wait_finished(council_id, timeout=10 * ideal + 10)
                posts = r.publisher.member_posts(council_id)
                if len(posts) != len(seated):
                    raise RuntimeError(f"{mode} round {repeat}: {len(posts)} of {len(seated)} members posted")
                walls.append(posts[-1].at - started)
            ratio = statistics.median(walls) / ideal
            figures.append(
                Figure(
                    name,
                    ratio,
                    "ratio",
                    target,
                    extra={
                        "wall_s": walls,
                        "ideal_s": ideal,
                        "latencies_s": list(latencies),
                        "detail": f"one {mode} round: engine.open() to the round's last post (median of "
                        f"{repeats}) ÷ {against}",
                    },
                )
            )
    return figures


# -- 2. the engine's own cost per message ---------------------------------------------------------------


async def message_overhead(
    workdir: Path, *, backend: str = "sqlite", councils: int = 5, rounds: int = 10
) -> list[Figure]:
    """Per AI message, with a zero-latency provider: the time between two consecutive posts of a council,
    minus the time spent inside the provider client's complete() for that message."""
    suffix = "" if backend == "sqlite" else "_postgres"
    overhead: list[float] = []
    cycles: list[float] = []
    provider: list[float] = []
    async with rig(workdir, backend=backend) as r:
        await _warm_up(r)
        sessions_before = r.sessions[0]
        for tag in range(1, councils + 1):
            council_id = await r.create(tag, rounds=rounds)
            opened = time.perf_counter()
            await r.open(council_id)
            await r.publisher.wait_finished(council_id, timeout=60)
            posts = r.publisher.member_posts(council_id)
            calls = [call for call in r.clients.calls if call[0] >= opened]
            for before, after in itertools.pairwise(posts):
                inside = sum(end - start for start, end in calls if before.at < start <= after.at)
                cycles.append((after.at - before.at) * 1000)
                provider.append(inside * 1000)
                overhead.append((after.at - before.at - inside) * 1000)
        sessions = (r.sessions[0] - sessions_before) / (councils * len(r.catalog) * rounds)
    db = "PostgreSQL" if backend == "postgresql" else "SQLite file"
    common = {"samples": len(overhead), "database": db, "db_sessions_per_message": sessions}
    detail = (
        f"time between consecutive posts of one council ({councils} councils × 4 members × {rounds} rounds, "
        "round-robin, run one after another, governance gate on, in-process publisher), minus the time spent "
        "inside the provider client's complete() for that message (loopback HTTP + fake server), measured per "
        "message; message_cycle_ms_* include it"
    )
    return [
        Figure(
            f"overhead_per_message_ms_p50{suffix}",
            percentile(overhead, 50),
            "ms",
            5,
            extra={**common, "detail": detail},
        ),
        Figure(f"overhead_per_message_ms_p99{suffix}", percentile(overhead, 99), "ms", 25, extra=common),
        Figure(
            f"message_cycle_ms_p50{suffix}",
            percentile(cycles, 50),
            "ms",
            extra={**common, "p99": percentile(cycles, 99), "detail": "overhead plus the loopback provider call"},
        ),
        Figure(
            f"provider_call_ms_p50{suffix}",
            percentile(provider, 50),
            "ms",
            extra={
                **common,
                "p99": percentile(provider, 99),
                "detail": "inside ProviderClient.complete(): request JSON, loopback HTTP, the fake server's own "
                "work (same process), response parsing",
            },
        ),
    ]


# -- 3. many councils at once ---------------------------------------------------------------------------


async def concurrent_councils(
    workdir: Path,
    *,
    councils: int = 200,
    seats: int = 4,
    rounds: int = 3,
    seed: int = 20_240_611,
    latency_range: tuple[float, float] = (0.05, 0.5),
    timeout: float = 180,
) -> list[Figure]:
    """`councils` round-robin councils at once, each provider call taking a seeded random latency."""
    low, high = latency_range

    def latency(model: str, tag: int | None, index: int) -> float | None:
        if not tag:
            return None  # the warm-up council
        return random.Random(f"{seed}:{tag}:{model}:{index}").uniform(low, high)

    seated = members(seats)
    tags = range(1, councils + 1)
    chains = {tag: sum(latency(m.model, tag, i) or 0.0 for m in seated for i in range(rounds)) for tag in tags}
    ideal = max(chains.values())
    expected = councils * seats * rounds
    async with rig(workdir, seated=seated, delay_for=latency) as r:
        await _warm_up(r)
        gc.collect()
        baseline = rss_mb()
        created = time.perf_counter()
        ids = {tag: await r.create(tag, rounds=rounds) for tag in tags}
        create_s = time.perf_counter() - created
        async with RssSampler() as sampler:
            started = time.perf_counter()
            await asyncio.gather(*(r.open(council_id) for council_id in ids.values()))
            with contextlib.suppress(TimeoutError):  # what did not arrive in time counts as undelivered
                await r.publisher.wait_count(councils + 1, timeout=timeout)  # + the warm-up council
        finished = [r.publisher.finished[c] for c in ids.values() if c in r.publisher.finished]
        wall = (max(finished) if finished else time.perf_counter()) - started
        ours = set(ids.values())
        posts = [p for p in r.publisher.posts if p.council_id in ours]
        member_posts = [(p.council_id, p.author, p.content) for p in posts if p.kind == "member"]
        delivered = len(set(member_posts))
        duplicated = len(member_posts) - delivered
        notices = sum(p.kind == "notice" for p in posts)
        max_in_flight = r.server.max_in_flight
    common = {"councils": councils, "members": seats, "rounds": rounds}
    return [
        Figure(
            "concurrent_councils",
            delivered,
            "messages delivered",
            expected,
            cmp=">=",
            extra={
                **common,
                "expected": expected,
                "duplicated": duplicated,
                "failed_turns": notices,
                "councils_finished": len(finished),
                "detail": f"round-robin, provider latency uniform {low}-{high} s per call (seed {seed}), "
                "SQLite file, governance gate on, in-process publisher",
            },
        ),
        Figure("concurrent_councils_duplicated", duplicated, "messages", 0, extra=common),
        Figure(
            "concurrent_councils_wall_ratio",
            wall / ideal,
            "ratio",
            extra={
                **common,
                "wall_s": wall,
                "ideal_s": ideal,
                "create_s": create_s,
                "provider_max_in_flight": max_in_flight,
                "detail": "from opening all councils to the last one finishing, ÷ the longest chain (the council "
                "whose members' latencies over all its rounds add up to most)",
            },
        ),
        Figure(
            "concurrent_councils_rss_growth_mb",
            sampler.peak - baseline,
            "MB",
            150,
            extra={
                **common,
                "baseline_mb": baseline,
                "peak_mb": sampler.peak,
                "detail": "peak RSS while the councils ran minus RSS before they were created; the fake provider "
                "and the publisher's records live in the same process",
            },
        ),
    ]


# -- 4. prompt size over a long council -----------------------------------------------------------------


def budget_parameter() -> str | None:
    """The CouncilEngine keyword that takes a context budget in tokens, once the engine has one."""
    names = inspect.signature(CouncilEngine).parameters
    if "context_budget" in names:
        return "context_budget"
    return next((name for name in names if "budget" in name), None)


async def prompt_budget(
    workdir: Path, *, turns: int = 300, budget: int = 4000, checkpoints: Sequence[int] = (50, 100, 300)
) -> list[Figure]:
    """A `turns`-turn round-robin council of 4 members (replies ~250 tokens each): the prompt sizes the
    fake provider received, by its own estimate (characters ÷ 4)."""
    parameter = budget_parameter()
    options = {parameter: budget} if parameter else {}
    seated = members(4)
    async with rig(workdir, seated=seated, engine_options=options) as r:
        council_id = await r.convene(1, rounds=turns // len(seated))
        await r.publisher.wait_finished(council_id, timeout=240)
        tokens = [call.prompt_tokens for call in r.server.calls if call.tag == 1]
    if parameter:
        how = f"CouncilEngine({parameter}={budget})"
    else:
        how = (
            "this CouncilEngine takes no context budget (no budget parameter), so every prompt carries the whole "
            "transcript"
        )
    common = {"turns": len(tokens), "budget": budget}
    figures = [
        Figure(
            "prompt_tokens_max",
            max(tokens) if tokens else None,
            "tokens",
            budget,
            extra={**common, "detail": f"largest prompt any member was sent; {how}"},
        )
    ]
    for turn in checkpoints:
        value = tokens[turn - 1] if len(tokens) >= turn else None
        figures.append(Figure(f"prompt_tokens_per_turn_{turn}", value, "tokens", budget, extra=common))
    # Flat: the council's later turns send no bigger prompts than its middle ones. (Early turns may still be
    # filling the budget, e.g. with summaries of older turns, so the first checkpoint is not the reference.)
    middle, last = checkpoints[-2], checkpoints[-1]
    growth = tokens[last - 1] / tokens[middle - 1] if len(tokens) >= last else None
    figures.append(
        Figure(
            "prompt_tokens_growth",
            growth,
            "ratio",
            1.10,
            extra={
                **common,
                "detail": f"prompt at turn {last} ÷ prompt at turn {middle}: about 1 when flat, "
                f"{last / middle:g} when the whole transcript is sent",
            },
        )
    )
    return figures


# -- 5. memory per running council ----------------------------------------------------------------------------


async def running_council_memory(workdir: Path, *, councils: int = 1000, seats: int = 4) -> list[Figure]:
    """`councils` round-robin councils running at once, each after its first member's reply and waiting for the
    next (the provider answers a council's first call at once and its later ones only after the measurement):
    resident memory per running council."""

    def latency(model: str, tag: int | None, index: int) -> float | None:
        if not tag or (model == seated[0].model and index == 0):
            return None  # the warm-up council, and each council's first reply
        return 120.0  # answered after the measurement: the councils stay running meanwhile

    seated = members(seats)
    async with rig(workdir, seated=seated, delay_for=latency, provider_timeout=300.0) as r:
        await _warm_up(r)
        gc.collect()
        baseline = rss_mb()
        ids = [await r.create(tag, rounds=3) for tag in range(1, councils + 1)]
        await asyncio.gather(*(r.open(council_id) for council_id in ids))
        async with asyncio.timeout(300):
            # The in-process publisher offers no event to wait on; the poll is bounded by the timeout.
            while len({p.council_id for p in r.publisher.posts if p.kind == "member"}) < councils + 1:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        gc.collect()
        running = len(r.engine._tasks)
        grown = rss_mb() - baseline
    per_council_kb = grown * 1024 / councils
    return [
        Figure(
            "rss_per_running_council_kb",
            per_council_kb,
            "KB",
            extra={
                "councils": councils,
                "running": running,
                "members": seats,
                "rss_growth_mb": grown,
                "transcript_kept_lines_cap": KEEP_LINES,
                "detail": "resident memory after opening the councils, each past its first member reply and "
                "waiting for the next, minus before; the fake provider and the publisher's records live in the "
                "same process. A running council's transcript is kept in memory up to the cap "
                "(bot/council/transcript_view.py)",
            },
        )
    ]
