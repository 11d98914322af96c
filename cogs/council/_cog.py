"""The /council command group and the listener that hears humans in council threads."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.council import reports
from bot.council.deliberation import MODE_HELP
from bot.council.engine import MAX_ROUNDS, MODES, ConveneError, ConveneLimits, CouncilEngine
from bot.council.ratings import RatingError
from bot.council.templates import DEFAULT_ROUNDS, CouncilTemplates, TemplateError, clean_template_name
from bot.governance.gate import GovernanceGate
from cogs.council import _details, _embeds, _ratings, _reports, _templates
from cogs.council._publisher import DiscordPublisher
from storage import repository as repo
from storage import template_repository as templates_repo
from storage.models import Council, CouncilTemplate
from storage.template_repository import TemplateExists

if TYPE_CHECKING:
    from bot.app import CouncilBot

log = logging.getLogger(__name__)

# What the bot itself needs in the channel to run a council there.
REQUIRED_PERMISSIONS = {
    "send_messages": "Send Messages",
    "embed_links": "Embed Links",
    "create_public_threads": "Create Public Threads",
    "send_messages_in_threads": "Send Messages in Threads",
    "manage_webhooks": "Manage Webhooks",
    "read_message_history": "Read Message History",
}

MODE_CHOICES = [app_commands.Choice(name=f"{mode}: {MODE_HELP[mode]}"[:100], value=mode) for mode in MODES]


class CouncilCog(commands.Cog):
    """Convene councils of AI members and steer them from their threads."""

    council = app_commands.Group(
        name="council", description="Convene and steer councils of AI members.", guild_only=True
    )
    template = app_commands.Group(
        name="template", description="Save councils as templates (permanent councils) and reuse them.", parent=council
    )

    def __init__(self, bot: CouncilBot) -> None:
        self.bot = bot
        self.publisher = DiscordPublisher(bot)
        settings = bot.settings
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
        )
        self.templates = CouncilTemplates(self.engine)
        self.publisher.status_source = self.engine.status  # the starter embed shows the council's progress
        self._resumed = False
        self.details_menu = app_commands.ContextMenu(name="Message details", callback=self.message_details)
        self.details_menu.guild_only = True

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.details_menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.details_menu.name, type=self.details_menu.type)
        await self.engine.shutdown()

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
    ) -> None:
        """Convene a council of AI members in a new thread."""
        channel = interaction.channel
        if not isinstance(channel, discord.TextChannel) or interaction.guild is None:
            await _refuse(interaction, "Convene a council from a server text channel; it opens its own thread there.")
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
        }
        plan = None
        if template is None:  # no database read needed: refused before the acknowledgement, as always
            try:
                plan = await self.templates.plan(guild_id=guild_id, template=None, **options)
            except ConveneError as error:
                await _refuse(interaction, str(error))
                return
        missing = [
            label for perm, label in REQUIRED_PERMISSIONS.items() if not getattr(interaction.app_permissions, perm)
        ]
        if missing:
            await _refuse(interaction, f"I need these permissions in {channel.mention} first: {', '.join(missing)}.")
            return
        # Acknowledge before touching the database: Discord allows three seconds.
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            if plan is None:  # templates: the template is read after the acknowledgement
                plan = await self.templates.plan(guild_id=guild_id, template=template, **options)
            await self.engine.admit(guild_id=guild_id, user_id=interaction.user.id)
        except ConveneError as error:
            await _refuse(interaction, str(error))
            return
        council = await self.engine.create(
            plan,
            guild_id=guild_id,
            channel_id=channel.id,
            convener_id=interaction.user.id,
            convener_name=interaction.user.display_name,
        )
        try:
            starter = await channel.send(
                embed=_embeds.convened(plan, council.id, interaction.user.mention, template_name=template),
                allowed_mentions=discord.AllowedMentions.none(),
            )
            thread = await starter.create_thread(name=thread_name(plan.topic), auto_archive_duration=1440)
        except discord.HTTPException as error:
            await self.engine.abandon(council.id, f"Discord refused to open the thread: {error.text or error.status}")
            await interaction.followup.send(
                f"I could not open the council's thread: {error.text or error.status}.", ephemeral=True
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
            await _refuse(interaction, f"Council #{council.id} is {council.state}; only a running council can pause.")
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
            await _refuse(interaction, str(error))
            return
        if not resumed:
            await _refuse(interaction, f"Council #{council.id} is {council.state}; only a paused council can resume.")
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

    @council.command(name="assign")
    @app_commands.describe(member="The member's name, e.g. DeepSeek", role="The new role, e.g. the Skeptic")
    async def assign(
        self,
        interaction: discord.Interaction,
        member: app_commands.Range[str, 1, 64],
        role: app_commands.Range[str, 1, 100],
    ) -> None:
        """Give a member of this thread's council a new role from its next turn on."""
        council = await self._find_controllable(interaction)
        if council is None:
            return
        try:
            seat = await self.engine.steering.assign(council.id, member, role)
        except ConveneError as error:
            await _refuse(interaction, str(error))
            return
        await interaction.response.send_message(
            f"🎭 {interaction.user.mention} made **{seat.name}** {seat.role}, from its next turn on.",
            allowed_mentions=discord.AllowedMentions.none(),
        )

    @council.command(name="mode")
    @app_commands.describe(mode="How members take turns from the next round on")
    @app_commands.choices(mode=MODE_CHOICES)
    async def mode(self, interaction: discord.Interaction, mode: str) -> None:
        """Change how this thread's council deliberates, from its next round on."""
        council = await self._find_controllable(interaction)
        if council is None:
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            await self.engine.steering.switch_mode(
                council.id, mode, by=interaction.user.display_name, key=f"mode:{interaction.id}"
            )
        except ConveneError as error:
            await _refuse(interaction, str(error))
            return
        await interaction.followup.send(
            f"Council #{council.id} deliberates in {mode} mode from now on.", ephemeral=True
        )

    @council.command(name="invite")
    @app_commands.describe(member="A member from the catalog (see /council members)")
    async def invite(self, interaction: discord.Interaction, member: app_commands.Range[str, 1, 64]) -> None:
        """Seat another member at this thread's council; it speaks from the next round on."""
        council = await self._find_controllable(interaction)
        if council is None:
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            seat = await self.engine.steering.invite(
                council.id, member, by=interaction.user.display_name, key=f"invite:{interaction.id}"
            )
        except ConveneError as error:
            await _refuse(interaction, str(error))
            return
        await interaction.followup.send(f"{seat.name} joins council #{council.id}.", ephemeral=True)

    @council.command(name="dismiss")
    @app_commands.describe(member="The member's name, e.g. DeepSeek")
    async def dismiss(self, interaction: discord.Interaction, member: app_commands.Range[str, 1, 64]) -> None:
        """Send a member away from this thread's council; its words stay in the transcript."""
        council = await self._find_controllable(interaction)
        if council is None:
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            seat = await self.engine.steering.dismiss(
                council.id, member, by=interaction.user.display_name, key=f"dismiss:{interaction.id}"
            )
        except ConveneError as error:
            await _refuse(interaction, str(error))
            return
        await interaction.followup.send(f"{seat.name} has left council #{council.id}.", ephemeral=True)

    @convene.autocomplete("chair")
    async def _chair_names(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        # The members named so far in the `members` option, else the whole catalog.
        named = str(getattr(interaction.namespace, "members", "") or "")
        wanted = {part.strip().casefold() for part in named.replace(";", ",").split(",") if part.strip()}
        names = [spec.name for spec in self.bot.catalog if not wanted or spec.name.casefold() in wanted]
        return _choices(names, current)

    @invite.autocomplete("member")
    async def _catalog_names(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        # Members already at the table (benched ones too) would only be refused; dismissed ones may come back.
        council = await self._thread_council(interaction)
        seated = {s.name for s in await self.engine.seats(council.id) if not s.dismissed} if council else set()
        return _choices((spec.name for spec in self.bot.catalog if spec.name not in seated), current)

    @dismiss.autocomplete("member")
    @assign.autocomplete("member")
    async def _seated_names(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        council = await self._thread_council(interaction)
        if council is None:
            return []
        return _choices((seat.name for seat in await self.engine.seats(council.id) if seat.active), current)

    async def _thread_council(self, interaction: discord.Interaction) -> Council | None:
        if interaction.channel is None:
            return None
        return await repo.get_council_by_thread(self.bot.db, interaction.channel.id)

    @council.command(name="members")
    async def members(self, interaction: discord.Interaction) -> None:
        """List every AI member: provider, model, and whether its API key is configured."""
        await interaction.response.send_message(embed=_embeds.catalog(self.bot.catalog), ephemeral=True)

    @council.command(name="info")
    @app_commands.describe(council_id="The council's number (leave empty inside a council thread)")
    async def info(self, interaction: discord.Interaction, council_id: int | None = None) -> None:
        """Show what stands behind each member: provider, model, settings and its exact system prompt."""
        council = await self._find(interaction, council_id)
        if council is None:
            return
        cards = reports.member_cards(await self.engine.seats(council.id), council.topic)
        await _reports.send_pages(interaction, _reports.info_pages(council, cards))

    @council.command(name="usage")
    @app_commands.describe(council_id="The council's number (leave empty inside a council thread)")
    async def usage(self, interaction: discord.Interaction, council_id: int | None = None) -> None:
        """Show each member's turns, failed turns, tokens and estimated cost in a council."""
        council = await self._find(interaction, council_id)
        if council is None:
            return
        rows = reports.usage(await self.engine.seats(council.id), await repo.transcript(self.bot.db, council.id))
        await interaction.response.send_message(embed=_reports.usage_embed(council, rows), ephemeral=True)

    @council.command(name="export")
    @app_commands.describe(council_id="The council's number (leave empty inside a council thread)")
    async def export(self, interaction: discord.Interaction, council_id: int | None = None) -> None:
        """Download a council's transcript as Markdown and its full record as JSON."""
        council = await self._find(interaction, council_id)
        if council is None:
            return
        record = await reports.load_record(self.bot.db, self.bot.catalog, council)
        page = _reports.export_page(council, reports.export_markdown(record), reports.export_json(record))
        await _reports.send_pages(interaction, [page])

    @council.command(name="rate")
    async def rate(self, interaction: discord.Interaction) -> None:
        """Have this thread's members rate each other (clarity, insight, self-awareness) and post the scoreboard."""
        council = await self._find_controllable(interaction)
        if council is None:
            return
        # One provider call per member: acknowledge first, Discord allows three seconds.
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            board = await self.engine.ratings.rate(council.id)
        except RatingError as error:
            await interaction.followup.send(str(error), ephemeral=True)
            return
        problems = f" {len(board.problems)} rater(s) could not be counted in full." if board.problems else ""
        await interaction.followup.send(
            f"The members of council #{council.id} rated each other; the scoreboard is in the thread.{problems}",
            ephemeral=True,
        )

    @council.command(name="scoreboard")
    async def scoreboard(self, interaction: discord.Interaction) -> None:
        """Show how members rated each other across this server's ended councils."""
        assert interaction.guild is not None  # the group is guild_only
        board = await self.engine.ratings.server_scoreboard(interaction.guild.id)
        await interaction.response.send_message(
            embed=_ratings.server_embed(interaction.guild.name, board), ephemeral=True
        )

    # -- templates (permanent councils) -------------------------------------------------------------

    @template.command(name="save")
    @app_commands.describe(
        name="The template's name (1-50 characters, unique in this server)",
        replace="Overwrite the template of that name (its creator or Manage Server only)",
    )
    async def template_save(
        self, interaction: discord.Interaction, name: app_commands.Range[str, 1, 100], replace: bool = False
    ) -> None:
        """Save this thread's council (members, roles, mode, rounds) as a template."""
        channel = interaction.channel
        council = await repo.get_council_by_thread(self.bot.db, channel.id) if channel is not None else None
        if council is None:
            await _refuse(interaction, "Use `/council template save` inside a council's thread: it saves that council.")
            return
        try:
            name = clean_template_name(name)
        except TemplateError as error:
            await _refuse(interaction, str(error))
            return
        existing = await templates_repo.get_template(self.bot.db, council.guild_id, name)
        if existing is not None and not replace:
            await _refuse(
                interaction,
                f"There is already a template called {existing.template.name!r}. "
                "Choose another name, or add `replace:true` to overwrite it.",
            )
            return
        if existing is not None and not _may_change(interaction, existing.template):
            await _refuse(interaction, "Only the template's creator or someone with Manage Server can replace it.")
            return
        try:
            saved, replaced = await self.templates.save(
                council, name, user_id=interaction.user.id, user_name=interaction.user.display_name, replace=replace
            )
        except TemplateExists as taken:
            await _refuse(interaction, f"Someone has just saved a template called {taken.existing.name!r}.")
            return
        stored = await templates_repo.get_template(self.bot.db, council.guild_id, saved.name)
        assert stored is not None
        await interaction.response.send_message(
            f"{'Replaced' if replaced else 'Saved'} the template **{discord.utils.escape_markdown(saved.name)}**: "
            f"{_templates.describe_members(stored)} · {saved.mode} · {saved.rounds} round(s). "
            f"Convene it with `/council convene template:{saved.name}`.",
            ephemeral=True,
            allowed_mentions=discord.AllowedMentions.none(),
        )

    @template.command(name="list")
    async def template_list(self, interaction: discord.Interaction) -> None:
        """List this server's council templates."""
        assert interaction.guild is not None  # the group is guild_only
        templates = await templates_repo.list_templates(self.bot.db, interaction.guild.id)
        await interaction.response.send_message(embed=_templates.template_list(templates), ephemeral=True)

    @template.command(name="delete")
    @app_commands.describe(name="The template to delete")
    async def template_delete(self, interaction: discord.Interaction, name: app_commands.Range[str, 1, 100]) -> None:
        """Delete a template (its creator or Manage Server); its past councils stay."""
        assert interaction.guild is not None
        try:
            stored = await self.templates.find(interaction.guild.id, name)
        except TemplateError as error:
            await _refuse(interaction, str(error))
            return
        if not _may_change(interaction, stored.template):
            await _refuse(interaction, "Only the template's creator or someone with Manage Server can delete it.")
            return
        assert stored.template.id is not None
        await templates_repo.delete_template(self.bot.db, stored.template.id)
        await interaction.response.send_message(
            f"Deleted the template **{discord.utils.escape_markdown(stored.template.name)}**. "
            f"Its {stored.sessions} council(s) and their threads stay.",
            ephemeral=True,
        )

    @council.command(name="history")
    @app_commands.describe(template="A template: its sessions (without it: this server's latest councils)")
    async def history(
        self, interaction: discord.Interaction, template: app_commands.Range[str, 1, 100] | None = None
    ) -> None:
        """List past councils, newest first, with links to their threads."""
        assert interaction.guild is not None
        stored = None
        if template is not None:
            try:
                stored = await self.templates.find(interaction.guild.id, template)
            except TemplateError as error:
                await _refuse(interaction, str(error))
                return
        councils, total = await templates_repo.list_sessions(
            self.bot.db,
            interaction.guild.id,
            template_id=stored.template.id if stored else None,
            limit=_templates.HISTORY_LIMIT,
        )
        await interaction.response.send_message(embed=_templates.history(councils, total, stored), ephemeral=True)

    async def _template_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        if interaction.guild is None:
            return []
        needle = current.strip().casefold()
        names = await templates_repo.template_names(self.bot.db, interaction.guild.id)
        return [app_commands.Choice(name=name, value=name) for name in names if needle in name.casefold()][:25]

    @convene.autocomplete("template")
    async def _convene_template(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await self._template_choices(interaction, current)

    @template_save.autocomplete("name")
    async def _save_name(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await self._template_choices(interaction, current)

    @template_delete.autocomplete("name")
    async def _delete_name(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await self._template_choices(interaction, current)

    @history.autocomplete("template")
    async def _history_template(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await self._template_choices(interaction, current)

    async def message_details(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """The model, provider, tokens and cost behind a member's message."""
        council = (
            await repo.get_council_by_thread(self.bot.db, message.channel.id)
            if isinstance(message.channel, discord.Thread)
            else None
        )
        line = await repo.find_message_by_discord_id(self.bot.db, council.id, message.id) if council else None
        if council is None or line is None or line.author_kind != "ai":
            await _refuse(interaction, "Message details are for messages council members posted in a council's thread.")
            return
        seat = next((s for s in await self.engine.seats(council.id) if s.name == line.author_name), None)
        await interaction.response.send_message(
            embed=_details.details_embed(reports.line_details(line, seat)), ephemeral=True
        )

    # -- humans in threads -------------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        # Webhook posts (our members included) and bots are not humans interjecting.
        if message.webhook_id is not None or message.author.bot or not isinstance(message.channel, discord.Thread):
            return
        await self.engine.record_human(
            thread_id=message.channel.id,
            message_id=message.id,
            author_id=message.author.id,
            author_name=message.author.display_name,
            content=message.clean_content,
            replied_to=await self._replied_member(message, message.channel),
        )

    async def _replied_member(self, message: discord.Message, thread: discord.Thread) -> str | None:
        """The name on the member's message this one replies to, if it replies to one."""
        reference = message.reference
        replied = reference.resolved if reference is not None else None
        if not isinstance(replied, discord.Message) or replied.webhook_id is None or thread.parent_id is None:
            return None
        # Members post through our webhook under their own names (the engine checks the name is seated);
        # anyone else's webhook can post under those names too, and does not speak for a member.
        if not await self.publisher.is_member_webhook(thread.parent_id, replied.webhook_id):
            return None
        return replied.author.name

    # -- helpers -----------------------------------------------------------------------------------

    async def _find(self, interaction: discord.Interaction, council_id: int | None) -> Council | None:
        if council_id is not None:
            council = await repo.get_council(self.bot.db, council_id)
            if council is None or interaction.guild is None or council.guild_id != interaction.guild.id:
                await _refuse(interaction, f"There is no council #{council_id} in this server.")
                return None
            return council
        if interaction.channel is not None:
            council = await repo.get_council_by_thread(self.bot.db, interaction.channel.id)
            if council is not None:
                return council
        await _refuse(interaction, "Use this inside a council's thread, or give the council's number.")
        return None

    async def _find_controllable(self, interaction: discord.Interaction) -> Council | None:
        council = await self._find(interaction, None)
        if council is None:
            return None
        if interaction.user.id != council.convener_id and not interaction.permissions.manage_threads:
            await _refuse(
                interaction, "Only the member who convened this council or someone with Manage Threads can do that."
            )
            return None
        return council


def _may_change(interaction: discord.Interaction, template: CouncilTemplate) -> bool:
    """A template belongs to whoever saved it; the server's managers may change any."""
    return interaction.user.id == template.created_by_id or interaction.permissions.manage_guild


async def _refuse(interaction: discord.Interaction, text: str) -> None:
    """Tell only the person who asked; nothing has changed."""
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True)
    else:
        await interaction.response.send_message(text, ephemeral=True)


def _choices(names: Iterable[str], current: str) -> list[app_commands.Choice[str]]:
    wanted = current.casefold()
    return [app_commands.Choice(name=name, value=name) for name in names if wanted in name.casefold()][:25]


def thread_name(topic: str, limit: int = 100) -> str:
    """Discord thread names are at most 100 characters; cut at a word."""
    topic = " ".join(topic.split())
    if len(topic) <= limit:
        return topic
    cut = topic[: limit - 1].rsplit(" ", 1)[0]
    return (cut if len(cut) > limit // 2 else topic[: limit - 1]) + "…"
