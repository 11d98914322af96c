"""`/health` and `/metrics` over HTTP (aiohttp), for load balancers, orchestrators and Prometheus.

Off by default; `HEALTH_PORT` turns it on. It binds to `HEALTH_HOST` (default 127.0.0.1) because it
needs no public exposure: put it behind whatever scrapes it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from bot.providers.limits import ProviderStats
from storage import metrics_repository as metrics
from storage.database import Database


@dataclass(frozen=True, slots=True)
class BotView:
    """What the endpoints need to know about the running bot, without importing discord here."""

    is_ready: Callable[[], bool]
    shard_latencies: Callable[[], dict[int, float]]  # shard id -> seconds (NaN before the first heartbeat)


class HealthServer:
    def __init__(self, bot: BotView, db: Database, stats: ProviderStats, *, host: str, port: int) -> None:
        self.bot = bot
        self.db = db
        self.stats = stats
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        """Start serving; returns the port (useful with port 0)."""
        app = web.Application()
        app.router.add_get("/health", self.health)
        app.router.add_get("/metrics", self.metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def health(self, _request: web.Request) -> web.Response:
        database_ok = await metrics.database_answers(self.db)
        running = (await metrics.snapshot(self.db)).councils_by_state.get("running", 0) if database_ok else None
        ready = self.bot.is_ready()
        body = {
            "ready": ready,
            "database": "ok" if database_ok else "unreachable",
            "councils_running": running,
            "shards": {str(shard): _ms(latency) for shard, latency in self.bot.shard_latencies().items()},
        }
        return web.json_response(body, status=200 if ready and database_ok else 503)

    async def metrics(self, _request: web.Request) -> web.Response:
        snap = await metrics.snapshot(self.db)
        lines = [
            "# HELP ai_council_councils Councils by state.",
            "# TYPE ai_council_councils gauge",
            *(
                f'ai_council_councils{{state="{state}"}} {count}'
                for state, count in sorted(snap.councils_by_state.items())
            ),
            "# HELP ai_council_councils_running Councils running now.",
            "# TYPE ai_council_councils_running gauge",
            f"ai_council_councils_running {snap.councils_by_state.get('running', 0)}",
            "# HELP ai_council_member_turns_total Member replies stored.",
            "# TYPE ai_council_member_turns_total counter",
            f"ai_council_member_turns_total {snap.member_turns}",
            "# HELP ai_council_tokens_total Tokens used by members, as providers reported them.",
            "# TYPE ai_council_tokens_total counter",
            f'ai_council_tokens_total{{direction="in"}} {snap.tokens_in}',
            f'ai_council_tokens_total{{direction="out"}} {snap.tokens_out}',
            "# HELP ai_council_provider_calls_total Provider calls made by this process (retries inside count once).",
            "# TYPE ai_council_provider_calls_total counter",
            f"ai_council_provider_calls_total {self.stats.calls}",
            "# HELP ai_council_provider_errors_total Provider calls that failed, by kind, in this process.",
            "# TYPE ai_council_provider_errors_total counter",
            *(
                f'ai_council_provider_errors_total{{kind="{kind}"}} {count}'
                for kind, count in sorted(self.stats.errors.items())
            ),
            "# HELP ai_council_escalations_pending Escalations waiting for a moderator.",
            "# TYPE ai_council_escalations_pending gauge",
            f"ai_council_escalations_pending {snap.escalations_pending}",
        ]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain", charset="utf-8")


def _ms(latency: float) -> float | None:
    return None if math.isnan(latency) or math.isinf(latency) else round(latency * 1000, 1)
