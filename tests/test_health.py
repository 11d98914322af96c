"""/health and /metrics over loopback, on the real bot in the Discord harness."""

from __future__ import annotations

import aiohttp

from storage.database import Database
from tests.council_helpers import convene
from tests.fakes.provider_server import FakeProviderServer
from tests.harness import DiscordHarness


def gateway_ready(harness: DiscordHarness) -> None:
    # dpytest never receives a gateway READY; the endpoint reads discord.py's own flag.
    harness.bot._ready.set()  # type: ignore[union-attr]


async def get(port: int, path: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}{path}") as response:
        return response.status, response.headers["Content-Type"], await response.text()


async def test_health_and_metrics_report_the_bot_and_its_councils(
    harness: DiscordHarness, provider_server: FakeProviderServer
) -> None:
    port = await harness.bot.start_health(0)  # type: ignore[attr-defined]
    status, _, body = await get(port, "/health")
    assert status == 503 and '"ready": false' in body  # not connected to Discord yet
    gateway_ready(harness)
    provider_server.script("deepseek-test", status=401, message="bad key")
    await convene(harness, members="Llama, DeepSeek", rounds=1)

    status, kind, body = await get(port, "/health")
    assert status == 200 and kind.startswith("application/json")
    assert '"database": "ok"' in body and '"ready": true' in body and '"councils_running": 0' in body

    status, kind, body = await get(port, "/metrics")
    assert status == 200 and kind.startswith("text/plain")
    lines = set(body.splitlines())
    assert 'ai_council_councils{state="concluded"} 1' in lines
    assert "ai_council_councils_running 0" in lines
    assert "ai_council_member_turns_total 1" in lines
    assert 'ai_council_provider_errors_total{kind="auth"} 1' in lines
    assert "ai_council_provider_calls_total 2" in lines
    assert "ai_council_escalations_pending 0" in lines
    assert any(line.startswith('ai_council_tokens_total{direction="out"} ') for line in lines)


async def test_health_says_503_when_the_database_is_gone(harness: DiscordHarness, sqlite_db: Database) -> None:
    port = await harness.bot.start_health(0)  # type: ignore[attr-defined]
    gateway_ready(harness)
    await sqlite_db.engine.dispose()
    harness.bot.db = type(sqlite_db)("postgresql://nobody@127.0.0.1:1/none")  # type: ignore[attr-defined]
    harness.bot.health.db = harness.bot.db  # type: ignore[attr-defined]
    status, _, body = await get(port, "/health")
    assert status == 503 and '"database": "unreachable"' in body
    await harness.bot.db.close()  # type: ignore[attr-defined]
    harness.bot.db = sqlite_db  # type: ignore[attr-defined]
