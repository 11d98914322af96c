"""/council template save|list|delete and /council history: permanent councils and their sessions."""

from __future__ import annotations

import discord
from discord import app_commands

from bot.council.templates import TemplateError, clean_template_name
from cogs.council import _templates
from cogs.council._base import CouncilCommands, choices, council, refuse, template
from storage import repository as repo
from storage import template_repository as templates_repo
from storage.models import CouncilTemplate
from storage.template_repository import TemplateExists


class TemplateCommands(CouncilCommands):
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
            await refuse(interaction, "Use `/council template save` inside a council's thread: it saves that council.")
            return
        try:
            name = clean_template_name(name)
        except TemplateError as error:
            await refuse(interaction, str(error))
            return
        existing = await templates_repo.get_template(self.bot.db, council.guild_id, name)
        if existing is not None and not replace:
            await refuse(
                interaction,
                f"There is already a template called {existing.template.name!r}. "
                "Choose another name, or add `replace:true` to overwrite it.",
            )
            return
        if existing is not None and not _may_change(interaction, existing.template):
            await refuse(interaction, "Only the template's creator or someone with Manage Server can replace it.")
            return
        try:
            saved, replaced = await self.templates.save(
                council, name, user_id=interaction.user.id, user_name=interaction.user.display_name, replace=replace
            )
        except TemplateExists as taken:
            await refuse(interaction, f"Someone has just saved a template called {taken.existing.name!r}.")
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
        templates = await templates_repo.list_templates(
            self.bot.db, interaction.guild.id, readable=await self._readable(interaction)
        )
        await interaction.response.send_message(embed=_templates.template_list(templates), ephemeral=True)

    @template.command(name="delete")
    @app_commands.describe(name="The template to delete")
    async def template_delete(self, interaction: discord.Interaction, name: app_commands.Range[str, 1, 100]) -> None:
        """Delete a template (its creator or Manage Server); its past councils stay."""
        assert interaction.guild is not None
        try:
            stored = await self.templates.find(interaction.guild.id, name)
        except TemplateError as error:
            await refuse(interaction, str(error))
            return
        if not _may_change(interaction, stored.template):
            await refuse(interaction, "Only the template's creator or someone with Manage Server can delete it.")
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
        """List past councils you can see, newest first, with links to their threads."""
        assert interaction.guild is not None
        stored = None
        if template is not None:
            try:
                stored = await self.templates.find(interaction.guild.id, template)
            except TemplateError as error:
                await refuse(interaction, str(error))
                return
        councils, total = await templates_repo.list_sessions(
            self.bot.db,
            interaction.guild.id,
            template_id=stored.template.id if stored else None,
            limit=_templates.HISTORY_LIMIT,
            readable=await self._readable(interaction),
        )
        await interaction.response.send_message(embed=_templates.history(councils, total, stored), ephemeral=True)

    async def _template_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        if interaction.guild is None:
            return []
        return choices(await templates_repo.template_names(self.bot.db, interaction.guild.id), current.strip())

    @template_save.autocomplete("name")
    async def _save_name(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await self._template_choices(interaction, current)

    @template_delete.autocomplete("name")
    async def _delete_name(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await self._template_choices(interaction, current)

    @history.autocomplete("template")
    async def _history_template(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await self._template_choices(interaction, current)


def _may_change(interaction: discord.Interaction, template: CouncilTemplate) -> bool:
    """A template belongs to whoever saved it; the server's managers may change any."""
    return interaction.user.id == template.created_by_id or interaction.permissions.manage_guild
