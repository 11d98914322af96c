"""`/health` and `/metrics` over HTTP (aiohttp), for load balancers, orchestrators and Prometheus.

Off by default; `HEALTH_PORT` turns it on. It binds to `HEALTH_HOST` (default 127.0.0.1) because it
needs no public exposure: put it behind whatever scrapes it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from bot.providers.limits import ProviderStats
from storage import metrics_repository as metrics
from storage.database import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunnerHealth:
    """How this process's council runners are doing (bot/council/patience.py counts the outages)."""

    without_runner: int = 0  # running councils of this process's servers that no runner runs (none is healthy)
    waiting: int = 0  # councils waiting out an outage (the database or Discord away) now
    database_errors: int = 0
    discord_errors: int = 0
    runner_restarts: int = 0
    # Discord's rate budget (cogs/council/_budget.py): requests sent, those that waited for room, optional ones
    # skipped, 429s Discord answered anyway, and invalid requests (401, 403, 429) in the last 10 minutes.
    discord_requests: int = 0
    discord_waited: int = 0
    discord_skipped: int = 0
    discord_unbudgeted: int = 0  # requests that left without the budget's release (discord.py's retries, others)
    discord_rate_limited: int = 0
    discord_invalid_recent: int = 0
    discord_braking: bool = False  # past the brake: optional requests stop, the global share halves


@dataclass(frozen=True, slots=True)
class BotView:
    """What the endpoints need to know about the running bot, without importing discord here."""

    is_ready: Callable[[], bool]
    shard_latencies: Callable[[], dict[int, float]]  # shard id -> seconds (NaN before the first heartbeat)
    # The runners' state; `database_ok` says whether it may ask the database (who runs what).
    runners: Callable[[bool], Awaitable[RunnerHealth]] | None = None


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
        snap = await self._snapshot() if database_ok else None
        database_ok = snap is not None
        runners = await self._runners(database_ok)
        ready = self.bot.is_ready()
        body = {
            "ready": ready,
            "database": "ok" if database_ok else "unreachable",
            "councils_running": snap.councils_by_state.get("running", 0) if snap else None,
            "councils_without_runner": runners.without_runner,
            "councils_waiting": runners.waiting,
            "shards": {str(shard): _ms(latency) for shard, latency in self.bot.shard_latencies().items()},
        }
        healthy = ready and database_ok and not runners.without_runner and not runners.waiting
        return web.json_response(body, status=200 if healthy else 503)

    async def _snapshot(self) -> metrics.Snapshot | None:
        """The database's counts, or None when it does not answer (an outage is a state, not a 500)."""
        try:
            return await metrics.snapshot(self.db)
        except Exception:
            log.info("The database did not answer the health check", exc_info=True)
            return None

    async def _runners(self, database_ok: bool) -> RunnerHealth:
        if self.bot.runners is None:
            return RunnerHealth()
        try:
            return await self.bot.runners(database_ok)
        except Exception:
            log.info("The runners' state could not be read", exc_info=True)
            return await self.bot.runners(False)

    async def metrics(self, _request: web.Request) -> web.Response:
        snap = await self._snapshot() if await metrics.database_answers(self.db) else None
        runners = await self._runners(snap is not None)
        lines = [
            "# HELP ai_council_database_up Whether the database answered this scrape.",
            "# TYPE ai_council_database_up gauge",
            f"ai_council_database_up {int(snap is not None)}",
        ]
        if snap is not None:
            lines += [
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
                "# HELP ai_council_escalations_pending Escalations waiting for a moderator.",
                "# TYPE ai_council_escalations_pending gauge",
                f"ai_council_escalations_pending {snap.escalations_pending}",
            ]
        lines += [
            "# HELP ai_council_provider_calls_total Provider calls made by this process (retries inside count once).",
            "# TYPE ai_council_provider_calls_total counter",
            f"ai_council_provider_calls_total {self.stats.calls}",
            "# HELP ai_council_provider_errors_total Provider calls that failed, by kind, in this process.",
            "# TYPE ai_council_provider_errors_total counter",
            *(
                f'ai_council_provider_errors_total{{kind="{kind}"}} {count}'
                for kind, count in sorted(self.stats.errors.items())
            ),
            "# HELP ai_council_provider_key_calls_total Attempts per key of members with several keys, by the key's "
            "position in the member's list (never its value).",
            "# TYPE ai_council_provider_key_calls_total counter",
            *(
                f'ai_council_provider_key_calls_total{{member="{member}",key="{position}"}} {count}'
                for (member, position), count in sorted(self.stats.key_calls.items())
            ),
            "# HELP ai_council_provider_key_failures_total Failed attempts per key, by position and kind.",
            "# TYPE ai_council_provider_key_failures_total counter",
            *(
                f'ai_council_provider_key_failures_total{{member="{member}",key="{position}",kind="{kind}"}} {count}'
                for (member, position, kind), count in sorted(self.stats.key_failures.items())
            ),
            "# HELP ai_council_database_errors_total Database failures this process waited out.",
            "# TYPE ai_council_database_errors_total counter",
            f"ai_council_database_errors_total {runners.database_errors}",
            "# HELP ai_council_discord_errors_total Discord failures (5xx, dropped connections) this process waited out.",
            "# TYPE ai_council_discord_errors_total counter",
            f"ai_council_discord_errors_total {runners.discord_errors}",
            "# HELP ai_council_runner_restarts_total Council runners that went on after an outage or were restarted.",
            "# TYPE ai_council_runner_restarts_total counter",
            f"ai_council_runner_restarts_total {runners.runner_restarts}",
            "# HELP ai_council_discord_requests_total Requests to Discord, by what happened (unbudgeted: sent without the "
            "rate budget, as discord.py's own retries).",
            "# TYPE ai_council_discord_requests_total counter",
            f'ai_council_discord_requests_total{{outcome="sent"}} {runners.discord_requests}',
            f'ai_council_discord_requests_total{{outcome="waited"}} {runners.discord_waited}',
            f'ai_council_discord_requests_total{{outcome="skipped"}} {runners.discord_skipped}',
            f'ai_council_discord_requests_total{{outcome="unbudgeted"}} {runners.discord_unbudgeted}',
            "# HELP ai_council_discord_rate_limited_total 429s Discord answered (the budget should keep this at 0).",
            "# TYPE ai_council_discord_rate_limited_total counter",
            f"ai_council_discord_rate_limited_total {runners.discord_rate_limited}",
            "# HELP ai_council_discord_invalid_requests Invalid requests (401, 403, 429) in the last 10 minutes; "
            "Discord bans at 10,000.",
            "# TYPE ai_council_discord_invalid_requests gauge",
            f"ai_council_discord_invalid_requests {runners.discord_invalid_recent}",
            "# HELP ai_council_discord_braking 1 while invalid requests are past the brake (1,000 in 10 minutes): "
            "optional requests stop and the global share halves.",
            "# TYPE ai_council_discord_braking gauge",
            f"ai_council_discord_braking {int(runners.discord_braking)}",
            "# HELP ai_council_councils_waiting Councils waiting out an outage now.",
            "# TYPE ai_council_councils_waiting gauge",
            f"ai_council_councils_waiting {runners.waiting}",
            "# HELP ai_council_councils_without_runner Running councils of this process that no runner runs.",
            "# TYPE ai_council_councils_without_runner gauge",
            f"ai_council_councils_without_runner {runners.without_runner}",
        ]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain", charset="utf-8")


def _ms(latency: float) -> float | None:
    return None if math.isnan(latency) or math.isinf(latency) else round(latency * 1000, 1)
