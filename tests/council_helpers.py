"""Shared pieces of the end-to-end tests: the real bot in the Discord harness, and small helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.app import CouncilBot
from bot.catalog import Catalog
from bot.settings import Settings
from bot.tools.config import ToolConfig
from storage.database import Database
from tests.harness import DiscordHarness, InteractionResult
from tests.harness.rate_limits import RateLimits

TOPIC = "Should our city replace its parking lots with parks?"

# Runs a test against the fake Discord both in-process and over loopback HTTP (the `harness` fixture
# reads `discord_transport`).
both_transports = pytest.mark.parametrize("discord_transport", ["in-process", "http"])


def make_bot(
    db: Database, catalog: Catalog, tmp_path: Path, *, tool_config: ToolConfig | None = None, **limits: float
) -> CouncilBot:
    # Automatic peer ratings add a call per member at every conclusion; tests about them turn them on.
    limits.setdefault("peer_ratings", False)
    # One webhook per channel unless a test is about spreading councils over several.
    limits.setdefault("webhooks_per_channel", 1)
    # Starter embeds are paced per channel for Discord's rate limits (a council's last edit waits its turn);
    # tests about pacing set the interval back.
    limits.setdefault("channel_edit_interval", 0.0)
    settings = Settings(
        discord_token="unused",
        database_url="sqlite://",
        members_file=tmp_path / "members.toml",
        provider_timeout=5,
        log_level="INFO",
        **limits,  # type: ignore[arg-type]
    )
    return CouncilBot(settings, catalog, db, tool_config=tool_config)


async def start_harness(
    monkeypatch: pytest.MonkeyPatch,
    db: Database,
    catalog: Catalog,
    tmp_path: Path,
    *,
    http: bool = False,
    rate_limits: RateLimits | None = None,
    tool_config: ToolConfig | None = None,
    **limits: float,
) -> DiscordHarness:
    """The real bot in the Discord harness; `http=True` serves the fake Discord over loopback HTTP, with
    `rate_limits` (Discord's, as the harness models them) enforced when given."""
    harness = await DiscordHarness.start(
        make_bot(db, catalog, tmp_path, tool_config=tool_config, **limits),
        monkeypatch,
        http=http,
        rate_limits=rate_limits or False,
    )

    def waiting_for_people(task: asyncio.Task[object]) -> bool:
        # A paused, held or halted council is idle until a person acts: settling must not wait for it.
        cog = harness.bot.get_cog("CouncilCog")
        return cog is not None and cog.engine.is_waiting(task)  # type: ignore[attr-defined]

    harness.ignore_task = waiting_for_people
    return harness


async def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def member_posts(harness: DiscordHarness, thread_id: int) -> list[tuple[str, str]]:
    return [(p.author_name, p.content) for p in harness.posts_in(thread_id, kinds=("webhook",))]


async def convene(harness: DiscordHarness, **options: object) -> InteractionResult:
    options.setdefault("topic", TOPIC)
    options.setdefault("members", "Claude, DeepSeek, Llama")
    options.setdefault("rounds", 2)
    wait = bool(options.pop("wait", True))
    user = options.pop("user", harness.members["convener"])
    return await harness.slash(user, "council", "convene", wait_background=wait, **options)
