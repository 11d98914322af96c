"""The Discord bot: a thin commands.Bot that opens its resources and loads the cogs."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot.catalog import Catalog
from bot.governance.rules import RuleBook
from bot.health import BotView, HealthServer, RunnerHealth
from bot.providers.pool import ProviderPool, pool_for
from bot.settings import Settings
from bot.tools.config import ToolConfig
from storage import repository as repo
from storage.database import Database

log = logging.getLogger(__name__)

# (method, URL path, status, headers) of a response from Discord.
ResponseObserver = Callable[[str, str, int, Mapping[str, str]], None]
RequestObserver = Callable[[str, str], None]

EXTENSIONS = ("cogs.council", "cogs.governance")  # governance uses the council engine
COMMAND_HASH_KEY = "command_tree_hash"


class CouncilBot(commands.Bot):
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        db: Database,
        *,
        sync_commands: bool = True,
        provider_env: Mapping[str, str] | None = None,
        rulebook: RuleBook | None = None,
        tool_config: ToolConfig | None = None,
    ) -> None:
        intents = discord.Intents.default()
        intents.message_content = True  # humans' words in council threads join the discussion
        shards: dict[str, object] = {}
        if settings.shard_count is not None:
            shards["shard_count"] = settings.shard_count
            if settings.shard_ids is not None:
                shards["shard_ids"] = list(settings.shard_ids)
        # Every request the bot starts and every response Discord sends it are shown to the observers (the council
        # cog's rate budget counts what reaches Discord, learns Discord's buckets from the headers, counts refusals).
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(self._observe_request)
        trace.on_request_end.append(self._observe_response)
        self.request_observers: list[RequestObserver] = []
        self.response_observers: list[ResponseObserver] = []
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            http_trace=trace,
            **shards,
        )
        self.settings = settings
        self.catalog = catalog
        self.rulebook = rulebook or RuleBook.load()
        # The MCP servers members may call, besides the bot's own (cogs/council builds the hub that reaches them).
        self.tool_config = tool_config or ToolConfig()
        self.db = db
        self.sync_commands = sync_commands
        self.provider_env = provider_env
        self.http_session: aiohttp.ClientSession | None = None
        self.health: HealthServer | None = None
        self.providers: ProviderPool
        self.tree.on_error = self.on_app_command_error

    async def _observe_request(
        self, _session: aiohttp.ClientSession, _context: object, params: aiohttp.TraceRequestStartParams
    ) -> None:
        for observer in self.request_observers:
            observer(params.method, params.url.path)

    async def _observe_response(
        self, _session: aiohttp.ClientSession, _context: object, params: aiohttp.TraceRequestEndParams
    ) -> None:
        for observer in self.response_observers:
            observer(params.method, params.url.path, params.response.status, params.response.headers)

    async def setup_hook(self) -> None:
        self.http_session = aiohttp.ClientSession()
        self.providers = pool_for(self.http_session, self.settings, self.provider_env)
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        if self.sync_commands:
            await self.sync_commands_if_changed()
        if self.settings.health_port is not None:
            await self.start_health(self.settings.health_port)

    async def start_health(self, port: int) -> int:
        """Serve /health and /metrics; returns the port actually bound (0 picks a free one)."""
        view = BotView(is_ready=self.is_ready, shard_latencies=self.shard_latencies, runners=self.runner_health)
        self.health = HealthServer(view, self.db, self.providers.stats, host=self.settings.health_host, port=port)
        bound = await self.health.start()
        log.info("Health and metrics on http://%s:%s/health and /metrics", self.settings.health_host, bound)
        return bound

    async def sync_commands_if_changed(self) -> None:
        """Sync slash commands only when their definitions changed since the last sync."""
        payload = json.dumps([command.to_dict(self.tree) for command in self.tree.get_commands()], sort_keys=True)
        digest = hashlib.sha256(payload.encode()).hexdigest()
        if await repo.get_state_value(self.db, COMMAND_HASH_KEY) == digest:
            return
        synced = await self.tree.sync()
        await repo.set_state_value(self.db, COMMAND_HASH_KEY, digest)
        log.info("Synced %d slash command(s) with Discord (new commands may take a minute to appear)", len(synced))

    async def runner_health(self, database_ok: bool) -> RunnerHealth:
        """The council runners' state for /health and /metrics (who runs what is asked only of a live database)."""
        cog = self.get_cog("CouncilCog")
        engine = getattr(cog, "engine", None)
        if engine is None:
            return RunnerHealth()
        stats = engine.patience.stats
        meter = getattr(cog, "budget", None)
        budget = meter.report() if meter is not None else None
        return RunnerHealth(
            without_runner=len(await engine.unrun_councils()) if database_ok else 0,
            waiting=len(stats.waiting),
            database_errors=stats.database_errors,
            discord_errors=stats.discord_errors,
            runner_restarts=stats.runner_restarts,
            discord_requests=budget.sent if budget else 0,
            discord_waited=budget.waited if budget else 0,
            discord_skipped=budget.skipped if budget else 0,
            discord_unbudgeted=budget.unbudgeted if budget else 0,
            discord_rate_limited=budget.limited if budget else 0,
            discord_invalid_recent=budget.invalid_recent if budget else 0,
            discord_braking=budget.braking if budget else False,
        )

    def owns_guild(self, guild_id: int) -> bool:
        """Whether this process serves the server: Discord puts a guild on shard (id >> 22) % count."""
        count, ids = self.settings.shard_count, self.settings.shard_ids
        if count is None or ids is None:
            return True
        return (guild_id >> 22) % count in ids

    def shard_latencies(self) -> dict[int, float]:
        """Heartbeat latency in seconds per shard this process runs."""
        latencies = getattr(self, "latencies", None)  # AutoShardedBot: [(shard id, latency), ...]
        if latencies:
            return dict(latencies)
        return {self.shard_id or 0: self.latency}

    async def close(self) -> None:
        if self.health is not None:
            await self.health.stop()
        for extension in list(self.extensions):
            await self.unload_extension(extension)
        if self.http_session is not None:
            await self.http_session.close()
        await super().close()

    async def on_app_command_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        """Expected failures become a short private answer; unexpected ones are logged once."""
        if isinstance(error, app_commands.CheckFailure | app_commands.TransformerError):
            text = str(error) or "That command cannot be used here."
        else:
            command = interaction.command.qualified_name if interaction.command else "?"
            log.error("Command /%s failed", command, exc_info=error)
            text = "Something went wrong on my side; nothing was changed. The bot's log has the details."
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)


class ShardedCouncilBot(CouncilBot, commands.AutoShardedBot):
    """The same bot over several gateway shards (SHARD_COUNT, SHARD_IDS); one process per shard range,
    all on one PostgreSQL database."""


def bot_class(settings: Settings) -> type[CouncilBot]:
    return ShardedCouncilBot if settings.shard_count is not None else CouncilBot
