"""/governance: who moderates, what the policy is, the kill switch, the record; and the decisions themselves."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands, tasks

from bot.council.human_reports import HumanReports
from bot.council.moderation import CouncilModeration, DecisionError, GuildControl
from bot.governance.gate import MODES
from bot.governance.rules import CustomRule
from cogs.governance import _embeds
from cogs.governance._views import EscalationButton
from storage import governance_repository as gov
from storage import repository as repo
from storage.models import Escalation

if TYPE_CHECKING:
    from bot.app import CouncilBot

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()


class GovernanceCog(commands.Cog):
    """Humans stay in charge: moderators see every concern and decide, and every decision is recorded."""

    governance = app_commands.Group(
        name="governance",
        description="Moderate AI councils: policy, escalations, halt, audit.",
        guild_only=True,
        default_permissions=discord.Permissions(manage_messages=True),
    )

    def __init__(self, bot: CouncilBot) -> None:
        self.bot = bot
        self.report_menu = app_commands.ContextMenu(name="Report to moderators", callback=self.report_message)
        self.report_menu.guild_only = True
        self._report_edits: dict[int, asyncio.Lock] = {}  # escalation id: its reports' count shown one at a time

    @property
    def moderation(self) -> CouncilModeration:
        council_cog = self.bot.get_cog("CouncilCog")
        moderation = getattr(getattr(council_cog, "engine", None), "moderation", None)
        if moderation is None:
            raise RuntimeError("the council cog with moderation must be loaded first")
        return moderation

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.report_menu)
        # Escalation buttons posted by an earlier run of the bot keep working.
        self.bot.add_dynamic_items(EscalationButton)
        self.sweep_expired.start()

    async def cog_unload(self) -> None:
        self.sweep_expired.cancel()
        self.bot.remove_dynamic_items(EscalationButton)
        self.bot.tree.remove_command(self.report_menu.name, type=self.report_menu.type)

    @tasks.loop(seconds=60)
    async def sweep_expired(self) -> None:
        await self.expire_overdue()

    @sweep_expired.before_loop
    async def _before_sweep(self) -> None:
        await self.bot.wait_until_ready()

    async def expire_overdue(self, now: datetime | None = None) -> int:
        """Decide overdue escalations the safe way; returns how many expired."""
        return len(await self.moderation.expire_overdue(now, owns=self.bot.owns_guild))

    # -- decisions (called by the buttons in _views) ----------------------------------------------

    async def decide_from_click(
        self,
        interaction: discord.Interaction,
        escalation_id: int,
        *,
        approve: bool,
        end_council: bool,
        reason: str | None = None,
    ) -> None:
        if not await self.is_moderator(interaction):
            await interaction.followup.send("Only this server's moderators can decide escalations.", ephemeral=True)
            return
        escalation = await gov.get_escalation(self.bot.db, escalation_id)
        if escalation is None or interaction.guild is None or escalation.guild_id != interaction.guild.id:
            await interaction.followup.send(f"There is no escalation #{escalation_id} in this server.", ephemeral=True)
            return
        try:
            decision = await self.moderation.decide(
                escalation_id,
                approve=approve,
                moderator_id=interaction.user.id,
                moderator_name=interaction.user.display_name,
                reason=reason,
                end_council=end_council,
            )
        except DecisionError as error:
            await interaction.followup.send(str(error), ephemeral=True)
            return
        item = decision.escalation
        if not decision.changed:
            who = item.decided_by_name or "someone"
            when = f" <t:{int(_utc(item.decided_at).timestamp())}:R>" if item.decided_at else ""
            await interaction.followup.send(
                f"Escalation #{item.id} was already {item.state} by {who}{when}; nothing changed.", ephemeral=True
            )
            return
        await interaction.followup.send(f"Escalation #{item.id}: {item.state}. Recorded.", ephemeral=True)

    async def is_moderator(self, interaction: discord.Interaction) -> bool:
        if interaction.guild is None or not isinstance(interaction.user, discord.Member):
            return False
        if interaction.permissions.manage_guild:
            return True
        role_id = (await self.moderation.gate.policy(interaction.guild.id)).moderator_role_id
        return role_id is not None and any(role.id == role_id for role in interaction.user.roles)

    # -- report ------------------------------------------------------------------------------------

    async def report_message(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """Send a message in a council thread to the moderators."""
        if not isinstance(message.channel, discord.Thread):
            await interaction.response.send_message(
                "Only messages in a council's thread can be reported.", ephemeral=True
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            outcome = await HumanReports(self.moderation).report(
                thread_id=message.channel.id,
                discord_message_id=message.id,
                author_name=message.author.display_name,
                content=message.content or "(no text)",
                reporter_id=interaction.user.id,
                reporter_name=interaction.user.display_name,
            )
        except DecisionError as error:
            await interaction.followup.send(str(error), ephemeral=True)
            return
        escalation = outcome.escalation
        if outcome.already:
            answer = f"You have reported this message already: the moderators have it as escalation #{escalation.id}."
        elif outcome.joined:
            answer = (
                f"Thank you. The moderators already have this message as escalation #{escalation.id}; "
                f"your report is added to it ({escalation.report_count} report(s))."
            )
            await self._show_reports(escalation)
        else:
            answer = f"Thank you. The moderators have it as escalation #{escalation.id}."
        await interaction.followup.send(answer, ephemeral=True)

    async def _show_reports(self, escalation: Escalation) -> None:
        """Show the new count of reports on the escalation, without pinging anyone again."""
        # Reports arriving at the same moment each edit it: one at a time, each reading the count afresh, so
        # the last edit shows the last count.
        async with self._report_edits.setdefault(escalation.id or 0, asyncio.Lock()):
            current = await gov.get_escalation(self.bot.db, escalation.id or 0) or escalation
            council = await repo.get_council(self.bot.db, current.council_id)
            if council is not None:  # not posted yet: it shows the count when it is
                await self.moderation.publisher.escalation_changed(council, current)

    # -- commands ----------------------------------------------------------------------------------

    @governance.command(name="setup")
    @app_commands.rename(moderators_channel="channel")
    @app_commands.describe(
        moderators_channel="Where escalations are posted", role="The moderators' role (pinged on escalations)"
    )
    async def setup(
        self,
        interaction: discord.Interaction,
        moderators_channel: discord.TextChannel,
        role: discord.Role | None = None,
    ) -> None:
        """Choose the moderators' channel and role. Needs Manage Server."""
        if interaction.guild is None or not interaction.permissions.manage_guild:
            await interaction.response.send_message(
                "Only members with Manage Server can set up governance.", ephemeral=True
            )
            return
        perms = moderators_channel.permissions_for(interaction.guild.me)
        if not (perms.send_messages and perms.embed_links):
            await interaction.response.send_message(
                f"I need Send Messages and Embed Links in {moderators_channel.mention} to post escalations there.",
                ephemeral=True,
            )
            return
        await gov.update_guild_settings(
            self.bot.db,
            interaction.guild.id,
            moderator_channel_id=moderators_channel.id,
            moderator_role_id=role.id if role else None,
        )
        await self._record(
            interaction,
            "policy",
            f"moderators' channel #{moderators_channel.name}" + (f", role @{role.name}" if role else ", no role"),
        )
        await interaction.response.send_message(
            f"Escalations now go to {moderators_channel.mention}" + (f" and ping {role.mention}." if role else "."),
            ephemeral=True,
        )

    @governance.command(name="policy")
    @app_commands.describe(
        mode="hold: flagged member messages wait for a moderator; notify: they are shown and moderators told",
        judge="A catalog member that reviews every AI message (type 'none' to remove)",
        timeout_minutes="Minutes before an undecided escalation expires the safe way (1-10080)",
    )
    @app_commands.choices(mode=[app_commands.Choice(name=m, value=m) for m in MODES])
    async def policy(
        self,
        interaction: discord.Interaction,
        mode: str | None = None,
        judge: app_commands.Range[str, 1, 64] | None = None,
        timeout_minutes: app_commands.Range[int, 1, 10080] | None = None,
    ) -> None:
        """Show the moderation policy, or change it."""
        if not await self._moderator_or_refuse(interaction):
            return
        assert interaction.guild is not None
        changes: dict[str, object] = {}
        if mode is not None:
            changes["policy_mode"] = mode
        if judge is not None:
            if judge.strip().lower() == "none":
                changes["judge_member"] = None
            else:
                spec = self.bot.catalog.get(judge)
                if spec is None:
                    await interaction.response.send_message(f"There is no member called {judge!r}.", ephemeral=True)
                    return
                changes["judge_member"] = spec.name
        if timeout_minutes is not None:
            changes["escalation_timeout_s"] = timeout_minutes * 60
        if changes:
            await gov.update_guild_settings(self.bot.db, interaction.guild.id, **changes)
            await self._record(interaction, "policy", ", ".join(f"{k}={v}" for k, v in changes.items()))
        await self._show_policy(interaction)

    @governance.command(name="category")
    @app_commands.describe(category="A rule category id, e.g. privacy", enabled="Whether its rules are checked")
    async def category(self, interaction: discord.Interaction, category: str, enabled: bool) -> None:
        """Turn a category of the shipped rules on or off for this server."""
        if not await self._moderator_or_refuse(interaction):
            return
        assert interaction.guild is not None
        known = [c.id for c in self.moderation.gate.rulebook.categories]
        if category not in known:
            await interaction.response.send_message(f"Categories are: {', '.join(known)}.", ephemeral=True)
            return
        settings = await gov.get_guild_settings(self.bot.db, interaction.guild.id)
        disabled = {c for c in settings.disabled_categories.split(",") if c}
        (disabled.discard if enabled else disabled.add)(category)
        await gov.update_guild_settings(
            self.bot.db, interaction.guild.id, disabled_categories=",".join(sorted(disabled))
        )
        await self._record(interaction, "policy", f"category {category} {'on' if enabled else 'off'}")
        await self._show_policy(interaction)

    @governance.command(name="rule-add")
    @app_commands.describe(
        kind="phrase: matched as whole words; regex: a Python regular expression",
        pattern="The phrase or regex (at most 200 characters)",
        category="The category it belongs to",
    )
    @app_commands.choices(kind=[app_commands.Choice(name=k, value=k) for k in ("phrase", "regex")])
    async def rule_add(
        self,
        interaction: discord.Interaction,
        kind: str,
        pattern: app_commands.Range[str, 1, 200],
        category: str = "custom",
    ) -> None:
        """Add a server rule on top of the shipped ones."""
        if not await self._moderator_or_refuse(interaction):
            return
        assert interaction.guild is not None
        try:
            self.moderation.gate.rulebook.validate_custom(CustomRule(0, kind, pattern, category))  # type: ignore[arg-type]
        except ValueError as error:
            await interaction.response.send_message(str(error), ephemeral=True)
            return
        rule = await gov.add_guild_rule(
            self.bot.db,
            guild_id=interaction.guild.id,
            kind=kind,
            pattern=pattern,
            category=category,
            created_by_id=interaction.user.id,
        )
        await self._record(interaction, "rule", f"added rule #{rule.id}: {kind} {pattern!r} → {category}")
        await interaction.response.send_message(f"Rule #{rule.id} added.", ephemeral=True)

    @governance.command(name="rule-remove")
    async def rule_remove(self, interaction: discord.Interaction, rule_id: int) -> None:
        """Remove one of this server's own rules."""
        if not await self._moderator_or_refuse(interaction):
            return
        assert interaction.guild is not None
        if not await gov.remove_guild_rule(self.bot.db, interaction.guild.id, rule_id):
            await interaction.response.send_message(f"There is no server rule #{rule_id}.", ephemeral=True)
            return
        await self._record(interaction, "rule", f"removed rule #{rule_id}")
        await interaction.response.send_message(f"Rule #{rule_id} removed.", ephemeral=True)

    @governance.command(name="halt")
    async def halt(self, interaction: discord.Interaction) -> None:
        """Stop every running council in this server at once."""
        if not await self._moderator_or_refuse(interaction):
            return
        assert interaction.guild is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        halted = await GuildControl(self.moderation).halt(
            interaction.guild.id, actor_id=interaction.user.id, actor_name=interaction.user.display_name
        )
        await interaction.followup.send(
            f"Halted {len(halted)} running council(s). No council starts or continues until `/governance resume-all`.",
            ephemeral=True,
        )

    @governance.command(name="resume-all")
    async def resume_all(self, interaction: discord.Interaction) -> None:
        """Lift the halt: halted councils continue and new ones may be convened."""
        if not await self._moderator_or_refuse(interaction):
            return
        assert interaction.guild is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        resumed = await GuildControl(self.moderation).resume_all(
            interaction.guild.id, actor_id=interaction.user.id, actor_name=interaction.user.display_name
        )
        await interaction.followup.send(f"The halt is lifted; {len(resumed)} council(s) continue.", ephemeral=True)

    @governance.command(name="audit")
    @app_commands.describe(council_id="Only this council's entries")
    async def audit(self, interaction: discord.Interaction, council_id: int | None = None) -> None:
        """The latest governance record: concerns, decisions, policy changes, halts."""
        if not await self._moderator_or_refuse(interaction):
            return
        assert interaction.guild is not None
        entries = await gov.list_audit(self.bot.db, interaction.guild.id, council_id=council_id, limit=15)
        await interaction.response.send_message(embed=_embeds.audit(entries), ephemeral=True)

    @governance.command(name="queue")
    async def queue(self, interaction: discord.Interaction) -> None:
        """Escalations waiting for a decision, with links."""
        if not await self._moderator_or_refuse(interaction):
            return
        assert interaction.guild is not None
        items = []
        for escalation in (await gov.list_pending_escalations(self.bot.db, interaction.guild.id))[:20]:
            council = await repo.get_council(self.bot.db, escalation.council_id)
            if council is not None:
                items.append((escalation, council))
        await interaction.response.send_message(embed=_embeds.queue(items), ephemeral=True)

    # -- helpers -----------------------------------------------------------------------------------

    async def _moderator_or_refuse(self, interaction: discord.Interaction) -> bool:
        if await self.is_moderator(interaction):
            return True
        await interaction.response.send_message(
            "Only this server's moderators (the configured role, or Manage Server) can do that.", ephemeral=True
        )
        return False

    async def _record(self, interaction: discord.Interaction, kind: str, detail: str) -> None:
        """A setting or rule of the server changed: audit it, and let the gate read it anew."""
        assert interaction.guild is not None
        self.moderation.gate.forget(interaction.guild.id)
        await gov.add_audit(
            self.bot.db,
            guild_id=interaction.guild.id,
            kind=kind,
            actor_id=interaction.user.id,
            actor_name=interaction.user.display_name,
            detail=detail,
        )

    async def _show_policy(self, interaction: discord.Interaction) -> None:
        assert interaction.guild is not None
        gate = self.moderation.gate
        current = await gate.policy(interaction.guild.id)
        rules = await gov.list_guild_rules(self.bot.db, interaction.guild.id)
        await interaction.response.send_message(embed=_embeds.policy(current, gate.rulebook, rules), ephemeral=True)


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
