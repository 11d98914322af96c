"""`python -m bench [--quick] [--only GROUP,...]`: print one JSON line per figure; exit 1 if a target is missed."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from bench import figures
from bench.ack import ack_latency
from bench.discord_load import discord_at_scale, discord_costs
from bench.report import Figure, exit_status, failed
from bench.rig import bench_keys
from bench.streaming import streaming_edits
from bench.tools import tool_round_trip
from bench.webhooks import webhook_spread


@dataclass(frozen=True, slots=True)
class Group:
    """Figures measured together: `run(workdir, quick)` picks the counts; `limit_s` bounds the time."""

    name: str
    run: Callable[[Path, bool], Awaitable[list[Figure]]]
    limit_s: float


def _postgres_overhead(workdir: Path, quick: bool) -> Awaitable[list[Figure]]:
    return figures.message_overhead(workdir, backend="postgresql", councils=3 if quick else 10)


GROUPS = (
    Group("rounds", lambda w, quick: figures.round_ratios(w, repeats=2 if quick else 5), 60),
    Group("overhead", lambda w, quick: figures.message_overhead(w, councils=3 if quick else 10), 90),
    Group("overhead_postgres", _postgres_overhead, 120),
    Group("concurrency", lambda w, quick: figures.concurrent_councils(w, councils=40 if quick else 200), 200),
    Group("prompts", lambda w, quick: figures.prompt_budget(w, turns=300), 120),
    Group("ack", lambda w, quick: ack_latency(w, running=50, samples=30 if quick else 100), 120),
    Group("streaming", lambda w, quick: streaming_edits(w, tokens=1000, seconds=5.0), 60),
    Group("tools", lambda w, quick: tool_round_trip(w, councils=8 if quick else 20, calls=50 if quick else 200), 90),
    Group("webhooks", lambda w, quick: webhook_spread(w, councils=8 if quick else 20), 240),
    Group("memory", lambda w, quick: figures.running_council_memory(w, councils=200 if quick else 1000), 300),
    Group("discord", lambda w, quick: discord_costs(w, councils=1 if quick else 3), 240),
    Group(
        "discord_scale",
        lambda w, quick: discord_at_scale(w, councils=40 if quick else 500, per_channel=2 if quick else 10),
        900,
    ),
)


async def run(selected: list[Group], quick: bool, workdir: Path) -> list[Figure]:
    results: list[Figure] = []
    for group in selected:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(group.limit_s):
                measured = await group.run(workdir, quick)
        except Exception as error:  # one broken group must not hide the others' figures
            logging.getLogger("bench").exception("Group %s failed", group.name)
            measured = [failed(group.name, error)]
        for figure in measured:
            print(figure.line(), flush=True)
        print(f"bench: {group.name} took {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
        results.extend(measured)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts: the same figures in under a minute")
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated groups to run (default: all): {', '.join(g.name for g in GROUPS)}",
    )
    args = parser.parse_args(argv)
    wanted = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = wanted - {group.name for group in GROUPS}
    if unknown:
        parser.error(f"unknown group(s): {', '.join(sorted(unknown))}")
    selected = [g for g in GROUPS if (not wanted or g.name in wanted)]
    if not os.environ.get("TEST_POSTGRES_URL"):
        selected = [g for g in selected if g.name != "overhead_postgres"]
        print("bench: TEST_POSTGRES_URL is not set: PostgreSQL figures skipped", file=sys.stderr)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="council-bench-") as workdir, bench_keys():
        results = asyncio.run(run(selected, args.quick, Path(workdir)))
    status = exit_status(results)
    missed = [figure.name for figure in results if not figure.ok]
    summary = f"missed: {', '.join(missed)}" if missed else "every target met"
    print(f"bench: {time.perf_counter() - started:.1f} s in all; {summary}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
