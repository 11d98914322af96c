"""`/council convene` acknowledgement latency: the real bot in the Discord harness, with councils running.

The harness is the tests' fake Discord (tests/harness). Two of its server-side hooks are wrapped for the
run only (with a MonkeyPatch, undone afterwards) to stamp when an interaction arrives and when the bot's
acknowledgement reaches the fake Discord; nothing in the bot is touched.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bench.report import Figure, percentile
from bench.rig import BenchProviderServer, bench_catalog, bench_settings, council_topic, database, members
from bot.app import CouncilBot
from bot.council.engine import CouncilEngine
from storage import repository as repo
from storage.database import Database
from tests.harness import DiscordHarness
from tests.harness.interactions import InteractionSession
from tests.harness.routes_webhooks import WebhookRoutes
from tests.harness.server import FakeDiscord

CONVENED = re.compile(r"Council #(\d+) is convened")
UNLIMITED = 10**6

CHANNELS = 10  # where the councils are convened, in turn


class AckClock:
    """Stamps (perf_counter) when each interaction token arrives and when its callback comes back."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.arrived: dict[str, float] = {}
        self.acknowledged: dict[str, float] = {}
        open_interaction = FakeDiscord.open_interaction
        callback = WebhookRoutes.r_callback
        clock = self

        def stamped_open(server: FakeDiscord, session: InteractionSession) -> None:
            clock.arrived[session.token] = time.perf_counter()  # just before the bot parses the interaction
            open_interaction(server, session)

        async def stamped_callback(routes: WebhookRoutes, request: Any) -> Any:
            clock.acknowledged.setdefault(request.params["webhook_token"], time.perf_counter())
            return await callback(routes, request)

        monkeypatch.setattr(FakeDiscord, "open_interaction", stamped_open)
        monkeypatch.setattr(WebhookRoutes, "r_callback", stamped_callback)

    def latency(self, token: str) -> float | None:
        if token not in self.arrived or token not in self.acknowledged:
            return None
        return self.acknowledged[token] - self.arrived[token]


@dataclass
class Measured:
    latencies_ms: list[float] = field(default_factory=list)  # arrival to acknowledgement, per convene
    done_ms: list[float] = field(default_factory=list)  # until the convene command had finished
    unacknowledged: int = 0
    running_at_start: int = 0
    running_at_end: int = 0


async def ack_latency(
    workdir: Path,
    *,
    running: int = 50,
    samples: int = 100,
    latency_range: tuple[float, float] = (3.0, 8.0),
    seed: int = 20_240_611,
    timeout: float = 120,
) -> list[Figure]:
    """Convene `samples` councils one after another while `running` councils (4 members, 10 rounds, slow
    providers) post in their threads; each measured council is concluded once its convene is done."""
    low, high = latency_range

    def latency(model: str, tag: int | None, index: int) -> float:
        return random.Random(f"{seed}:{tag}:{model}:{index}").uniform(low, high)

    monkeypatch = pytest.MonkeyPatch()
    server = BenchProviderServer(delay_for=latency)
    await server.start()
    # Cancelling a runner inside a database session makes SQLAlchemy's pool log an error; conclude and
    # shutdown both cancel runners, so those records are counted and reported, not fatal.
    measured = Measured()
    try:
        clock = AckClock(monkeypatch)
        seated = members(4)
        catalog = bench_catalog(server.base_url, seated)
        async with database("sqlite", workdir) as db:
            settings = bench_settings(
                workdir,
                UNLIMITED,
                # One fake endpoint stands for many providers here: the per-endpoint cap would queue them.
                provider_max_concurrency=UNLIMITED,
                # The figure is the acknowledgement; paced starter edits of the councils that end would only
                # keep the harness waiting at its close (two seconds each, per channel).
                channel_edit_interval=0.0,
            )
            harness = await DiscordHarness.start(CouncilBot(settings, catalog, db), monkeypatch)
            engine: CouncilEngine = harness.bot.get_cog("CouncilCog").engine  # type: ignore[union-attr]
            harness.ignore_task = engine.is_waiting
            try:
                async with asyncio.timeout(timeout):
                    names = ", ".join(member.name for member in seated)
                    await _measure(harness, engine, db, clock, names, running, samples, high, measured)
            finally:
                await engine.shutdown()
                await harness.close()
    finally:
        monkeypatch.undo()
        await server.stop()
    latencies = measured.latencies_ms
    return [
        Figure(
            "ack_latency_ms_p99",
            percentile(latencies, 99) if not measured.unacknowledged else None,
            "ms",
            50,
            extra={
                "p50": percentile(latencies, 50),
                "max": max(latencies, default=None),
                "samples": len(latencies),
                "unacknowledged": measured.unacknowledged,
                "running_at_start": measured.running_at_start,
                "running_at_end": measured.running_at_end,
                "convene_done_ms_p50": percentile(measured.done_ms, 50),
                "detail": f"real bot in the Discord harness: /council convene arriving to its deferred "
                f"acknowledgement, while {running} councils (4 members, 10 rounds, provider latency "
                f"{low:g}-{high:g} s per call, SQLite file) post in their threads",
            },
        )
    ]


async def _measure(
    harness: DiscordHarness,
    engine: CouncilEngine,
    db: Database,
    clock: AckClock,
    names: str,
    running: int,
    samples: int,
    slowest: float,
    measured: Measured,
) -> None:
    convener = harness.members["convener"]
    # Convenes spread over channels, as in a busy server: Discord opens about five threads per five seconds in
    # one channel, which would pace a hundred convenes in one channel to one a second.
    channels = [harness.channel] + [harness.add_channel(f"council-{n}") for n in range(1, CHANNELS)]

    async def convene(tag: int) -> tuple[str, int | None]:
        result = await harness.slash(
            convener,
            "council",
            "convene",
            channel=channels[tag % len(channels)],
            topic=council_topic(tag),
            members=names,
            rounds=10,
            wait_background=False,
        )
        token = next(token for token, session in harness.server.interactions.items() if session.result is result)
        found = CONVENED.search(" ".join(result.texts))
        return token, int(found.group(1)) if found else None

    for tag in range(1, running + 1):
        await convene(tag)  # returns once the council is open and running
    # Measure in the steady state, once the councils are posting (a first reply takes up to `slowest` s).
    async with asyncio.timeout(slowest + 10):
        # The fake Discord offers no event to wait on; the poll is bounded by the timeout.
        while sum(post.kind == "webhook" for post in harness.posts) < running:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    measured.running_at_start = len(await repo.list_councils_in_state(db, ("running",)))
    rng = random.Random(7)
    # Concluded as they are measured, each in the background: a conclude waits for the council's reply in
    # flight to be finished with a note, in turn with the others' posts through the channel's webhooks.
    concluding: list[asyncio.Task[bool]] = []
    for tag in range(running + 1, running + samples + 1):
        await asyncio.sleep(rng.uniform(0.05, 0.2))  # arrivals out of step with the councils' turns
        started = time.perf_counter()
        token, council_id = await convene(tag)
        measured.done_ms.append((time.perf_counter() - started) * 1000)
        value = clock.latency(token)
        if value is None or council_id is None:
            measured.unacknowledged += 1
        else:
            measured.latencies_ms.append(value * 1000)
        if council_id is not None:
            concluding.append(asyncio.create_task(engine.conclude(council_id, "Measured by the benchmark.")))
    await asyncio.gather(*concluding)
    measured.running_at_end = len(await repo.list_councils_in_state(db, ("running",)))
