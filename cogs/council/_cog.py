"""The /council cog: convening and running councils, and the listener that hears humans in council threads.

Its other commands come from the mixins in _steering_commands.py, _report_commands.py and _template_commands.py."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.council.engine import MAX_ROUNDS, ConveneError, ConveneLimits, CouncilEngine
from bot.council.publisher import HeardMessage
from bot.council.templates import DEFAULT_ROUNDS
from bot.governance.gate import GovernanceGate
from bot.tools.councils import councils_server
from bot.tools.hub import ToolHub
from cogs.council import _access, _embeds
from cogs.council._base import MODE_CHOICES, choices, council, refuse, template
from cogs.council._budget import DiscordBudget, Priority, observe, started
from cogs.council._errors import UNCERTAIN, describe
from cogs.council._files import shared_files
from cogs.council._publisher import DiscordPublisher
from cogs.council._report_commands import ReportCommands
from cogs.council._steering_commands import SteeringCommands
from cogs.council._template_commands import TemplateCommands
from storage import repository as repo
from storage.report_repository import ReadableCouncils

if TYPE_CHECKING:
    from bot.app import CouncilBot

log = logging.getLogger(__name__)

THREAD_ATTEMPTS = 4  # opening a thread that Discord rate limits: tries, about 20 s in all
THREAD_RETRY_BASE = 2.0  # seconds before the second try, doubling, unless Discord says how long

# What the bot itself needs in the channel to run a council there.
REQUIRED_PERMISSIONS = {
    "send_messages": "Send Messages",
    "embed_links": "Embed Links",
    "create_public_threads": "Create Public Threads",
    "send_messages_in_threads": "Send Messages in Threads",
    "manage_webhooks": "Manage Webhooks",
    "read_message_history": "Read Message History",
}


class CouncilCog(ReportCommands, SteeringCommands, TemplateCommands, commands.Cog):
    """Convene councils of AI members and steer them from their threads."""

    council = council
    template = template

    def __init__(self, bot: CouncilBot) -> None:
        self.bot = bot
        settings = bot.settings
        # Discord's rate budget, which learns Discord's buckets from every response the bot gets.
        self.budget = DiscordBudget()
        self.learn_budget = functools.partial(observe, self.budget)
        self.publisher = DiscordPublisher(
            bot,
            webhooks_per_channel=settings.webhooks_per_channel,
            channel_edit_interval=settings.channel_edit_interval,
            outage_notice_after=settings.outage_notice_after,
            budget=self.budget,
        )
        self.thread_retry_base = THREAD_RETRY_BASE
        # Members' tools: the configured MCP servers, and the bot's own search over past councils.
        self.tools = ToolHub(bot.tool_config, builtin={"councils": councils_server(bot.db, self.readable_for)})
        self.engine = CouncilEngine(
            bot.db,
            bot.catalog,
            bot.providers,
            self.publisher,
            provider_timeout=settings.provider_timeout,
            gate=GovernanceGate(bot.db, bot.rulebook, bot.catalog, bot.providers),
            context_budget=settings.context_budget_tokens,
            stream_replies=True,  # where the server's policy allows it: `notify` without a judge
            peer_ratings=settings.peer_ratings,
            limits=ConveneLimits(
                running_per_user=settings.max_councils_per_user,
                running_per_server=settings.max_councils_per_server,
                convenes_per_user_per_hour=settings.max_convenes_per_hour,
            ),
            tools=self.tools,
        )
        self.templates = self.engine.templates
        self.publisher.status_source = self.engine.status  # the starter embed shows the council's progress
        self._resumed = False
        self.details_menu = app_commands.ContextMenu(name="Message details", callback=self.message_details)
        self.details_menu.guild_only = True

    def count_request(self, method: str, path: str) -> None:
        """A request to Discord started: the budget counts what actually reaches Discord."""
        started(self.budget, method, path, self.bot.application_id)

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.details_menu)
        self.bot.response_observers.append(self.learn_budget)
        self.bot.request_observers.append(self.count_request)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.details_menu.name, type=self.details_menu.type)
        if self.learn_budget in self.bot.response_observers:
            self.bot.response_observers.remove(self.learn_budget)
        if self.count_request in self.bot.request_observers:
            self.bot.request_observers.remove(self.count_request)
        await self.engine.shutdown()
        await self.tools.close()
        await self.publisher.close()

    async def readable_for(self, council_id: int) -> tuple[int, ReadableCouncils] | None:
        """What the convener of a council may read on its server: all the bot's own search tool may show it."""
        council = await repo.get_council(self.bot.db, council_id)
        guild = self.bot.get_guild(council.guild_id) if council is not None else None
        if council is None or guild is None:
            return None
        convener = guild.get_member(council.convener_id)
        if convener is None:
            try:
                convener = await guild.fetch_member(council.convener_id)
            except discord.HTTPException:  # gone from the server: they may read nothing there
                return None
        return guild.id, await _access.readable(self.bot.db, convener)

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        # on_ready fires again after reconnects; councils are resumed once per process.
        if not self._resumed:
            self._resumed = True
            resumed = await self.engine.resume_all(owns=self.bot.owns_guild)
            if resumed:
                log.info("Resumed councils %s", ", ".join(map(str, resumed)))

    # -- commands ----------------------------------------------------------------------------------

    @council.command(name="convene")
    @app_commands.describe(
        topic="What the council should deliberate on",
        members="Members by name, separated by commas, e.g. Claude, DeepSeek, Llama (or give a template)",
        roles="Optional roles, e.g. DeepSeek=Philosopher, Llama=Realist",
        mode="How members take turns (default round-robin, or the template's)",
        chair="The member who chairs (conductor and review modes); default: the catalog's coordinator",
        max_tokens="Conclude once the council has used this many tokens in all",
        max_cost="Conclude once the council's estimated cost reaches this many US dollars",
        rounds=f"How many rounds (1-{MAX_ROUNDS}, default {DEFAULT_ROUNDS} or the template's)",
        template="A saved template: its members, roles, mode and rounds; options you give override them",
        language="Language members answer in, e.g. Russian or ru (default: the topic's, or the thread's)",
        tools="Narrow members' tools: none, or e.g. councils.* (default: each member's own)",
    )
    @app_commands.choices(mode=MODE_CHOICES)
    async def convene(
        self,
        interaction: discord.Interaction,
        topic: app_commands.Range[str, 3, 1000],
        members: app_commands.Range[str, 1, 300] | None = None,
        roles: app_commands.Range[str, 0, 500] | None = None,
        chair: app_commands.Range[str, 1, 64] | None = None,
        max_tokens: app_commands.Range[int, 1000, 10_000_000] | None = None,
        max_cost: app_commands.Range[float, 0.01, 1000.0] | None = None,
        rounds: app_commands.Range[int, 1, MAX_ROUNDS] | None = None,
        mode: str | None = None,
        template: app_commands.Range[str, 1, 100] | None = None,
        language: app_commands.Range[str, 1, 40] | None = None,
        tools: app_commands.Range[str, 1, 300] | None = None,
    ) -> None:
        """Convene a council of AI members in a new thread."""
        channel = interaction.channel
        if not isinstance(channel, discord.TextChannel) or interaction.guild is None:
            await refuse(interaction, "Convene a council from a server text channel; it opens its own thread there.")
            return
        guild_id = interaction.guild.id
        options = {
            "topic": topic,
            "member_names": members,
            "roles": roles,
            "rounds": rounds,
            "mode": mode,
            "chair": chair,
            "max_tokens": max_tokens,
            "max_cost": max_cost,
            "language": language,
            "tools": tools,
        }
        plan = None
        if template is None:  # no database read needed: refused before the acknowledgement, as always
            try:
                plan = await self.templates.plan(guild_id=guild_id, template=None, **options)
            except ConveneError as error:
                await refuse(interaction, str(error))
                return
        missing = [
            label for perm, label in REQUIRED_PERMISSIONS.items() if not getattr(interaction.app_permissions, perm)
        ]
        if missing:
            await refuse(interaction, f"I need these permissions in {channel.mention} first: {', '.join(missing)}.")
            return
        # Acknowledge before touching the database: Discord allows three seconds.
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            if plan is None:  # templates: the template is read after the acknowledgement
                plan = await self.templates.plan(guild_id=guild_id, template=template, **options)
            await self.engine.admit(guild_id=guild_id, user_id=interaction.user.id)
        except ConveneError as error:
            await refuse(interaction, str(error))
            return
        council = await self.engine.create(
            plan,
            guild_id=guild_id,
            channel_id=channel.id,
            convener_id=interaction.user.id,
            convener_name=interaction.user.display_name,
        )
        starter: discord.Message | None = None
        try:
            await self.budget.spend(("create", channel.id), Priority.NOTICE)
            starter = await channel.send(
                embed=_embeds.convened(plan, council.id, interaction.user.mention, template_name=template),
                allowed_mentions=discord.AllowedMentions.none(),
            )
            await self.budget.spend(("thread", channel.id), Priority.NOTICE)
            thread = await open_thread(starter, thread_name(plan.topic), retry_base=self.thread_retry_base)
        except (discord.HTTPException, discord.RateLimited, *UNCERTAIN) as error:
            # Nothing half-made stays behind: no starter without a thread, no council that never was.
            if starter is not None:
                with contextlib.suppress(discord.HTTPException, *UNCERTAIN):
                    await self.budget.spend(("edit", channel.id), Priority.NOTICE)
                    await starter.delete()
            else:  # the starter's post may have landed although its answer was lost
                await self.publisher.settle_starter(council)
            await self.engine.abandon(council.id)
            why = describe(error) if isinstance(error, discord.HTTPException) else "Discord did not answer"
            await interaction.followup.send(
                f"I could not open the council's thread ({why}); nothing was convened. Please try again.",
                ephemeral=True,
            )
            return
        await self.engine.open(council.id, thread.id)
        await interaction.followup.send(f"Council #{council.id} is convened in {thread.mention}.", ephemeral=True)

    @council.command(name="status")
    @app_commands.describe(council_id="The council's number (leave empty inside a council thread)")
    async def status(self, interaction: discord.Interaction, council_id: int | None = None) -> None:
        """Show a council's state, round, members and tokens used."""
        council = await self._find(interaction, council_id)
        if council is None:
            return
        report = await self.engine.status(council.id)
        assert report is not None
        await interaction.response.send_message(embed=_embeds.status(report), ephemeral=True)

    @council.command(name="pause")
    async def pause(self, interaction: discord.Interaction) -> None:
        """Pause this thread's council after the turn in progress."""
        council = await self._find_controllable(interaction)
        if council is None:
            return
        if not await self.engine.pause(council.id):
            await refuse(interaction, f"Council #{council.id} is {council.state}; only a running council can pause.")
            return
        await interaction.response.send_message(
            f"⏸️ {interaction.user.mention} paused the council. `/council resume` continues it.",
            allowed_mentions=discord.AllowedMentions.none(),
        )

    @council.command(name="resume")
    async def resume(self, interaction: discord.Interaction) -> None:
        """Resume this thread's paused council."""
        council = await self._find_controllable(interaction)
        if council is None:
            return
        try:
            resumed = await self.engine.resume(council.id)
        except ConveneError as error:
            await refuse(interaction, str(error))
            return
        if not resumed:
            await refuse(interaction, f"Council #{council.id} is {council.state}; only a paused council can resume.")
            return
        await interaction.response.send_message(
            f"▶️ {interaction.user.mention} resumed the council.", allowed_mentions=discord.AllowedMentions.none()
        )

    @council.command(name="conclude")
    async def conclude(self, interaction: discord.Interaction) -> None:
        """End this thread's council now; the thread and transcript stay."""
        council = await self._find_controllable(interaction)
        if council is None:
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        if await self.engine.conclude(council.id, f"Concluded by {interaction.user.display_name}."):
            await interaction.followup.send(f"Council #{council.id} is concluded.", ephemeral=True)
        else:
            await interaction.followup.send(f"Council #{council.id} has already ended.", ephemeral=True)

    @convene.autocomplete("chair")
    async def _chair_names(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        # The members named so far in the `members` option, else the whole catalog.
        named = str(getattr(interaction.namespace, "members", "") or "")
        wanted = {part.strip().casefold() for part in named.replace(";", ",").split(",") if part.strip()}
        names = [spec.name for spec in self.bot.catalog if not wanted or spec.name.casefold() in wanted]
        return choices(names, current)

    @convene.autocomplete("template")
    async def _convene_template(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await self._template_choices(interaction, current)

    @council.command(name="members")
    async def members(self, interaction: discord.Interaction) -> None:
        """List every AI member: provider, model, and whether its API key is configured."""
        await interaction.response.send_message(
            embed=_embeds.catalog(self.bot.catalog, self.bot.providers.key_status), ephemeral=True
        )

    # -- humans in threads -------------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        # Webhook posts (our members included) and bots are not humans interjecting.
        if message.webhook_id is not None or message.author.bot or not isinstance(message.channel, discord.Thread):
            return
        heard = HeardMessage(
            message_id=message.id,
            author_id=message.author.id,
            author_name=message.author.display_name,
            content=message.clean_content,
            replied_to=await self.publisher.replied_member(message, message.channel),
            files=await shared_files(message),
        )
        await self.engine.unheard.record(message.channel.id, heard)


async def open_thread(starter: discord.Message, name: str, *, retry_base: float = THREAD_RETRY_BASE) -> discord.Thread:
    """Open the council's thread from its starter. Discord may still be rate limiting thread creation after
    discord.py's own retries: wait and try again, well within the fifteen minutes a deferred answer has."""
    for attempt in range(1, THREAD_ATTEMPTS + 1):
        try:
            return await starter.create_thread(name=name, auto_archive_duration=1440)
        except discord.RateLimited as limited:  # discord.py's own answer to a long rate limit
            if attempt == THREAD_ATTEMPTS:
                raise
            await asyncio.sleep(min(limited.retry_after, 30.0))
        except discord.HTTPException as error:
            if (error.status != 429 and error.status < 500) or attempt == THREAD_ATTEMPTS:
                raise
            await asyncio.sleep(retry_base * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def thread_name(topic: str, limit: int = 100) -> str:
    """Discord thread names are at most 100 characters; cut at a word."""
    topic = " ".join(topic.split())
    if len(topic) <= limit:
        return topic
    cut = topic[: limit - 1].rsplit(" ", 1)[0]
    return (cut if len(cut) > limit // 2 else topic[: limit - 1]) + "…"
