"""What every part of the /council cog shares: the command groups, finding a council its asker may read, and
refusals.

The cog (cogs/council/_cog.py) is assembled from mixins, one per concern (steering, reports, templates); their
commands attach to the groups defined here, and discord.py binds them to the one cog instance.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, cast

import discord
from discord import app_commands

from bot.council.deliberation import MODE_HELP, MODES
from cogs.council import _access as access
from storage import repository as repo
from storage.models import Council
from storage.report_repository import ReadableCouncils

if TYPE_CHECKING:
    from bot.app import CouncilBot
    from bot.council.engine import CouncilEngine
    from bot.council.templates import CouncilTemplates
    from cogs.council._publisher import DiscordPublisher
    from cogs.governance._cog import GovernanceCog

council = app_commands.Group(name="council", description="Convene and steer councils of AI members.", guild_only=True)
template = app_commands.Group(
    name="template", description="Save councils as templates (permanent councils) and reuse them.", parent=council
)
MODE_CHOICES = [app_commands.Choice(name=f"{mode}: {MODE_HELP[mode]}"[:100], value=mode) for mode in MODES]


class CouncilCommands:
    """The cog's state and lookups, as its command mixins use them."""

    bot: CouncilBot
    engine: CouncilEngine
    publisher: DiscordPublisher
    templates: CouncilTemplates

    # -- helpers -----------------------------------------------------------------------------------

    async def _find(self, interaction: discord.Interaction, council_id: int | None) -> Council | None:
        """The council by number, or the thread's council; None (and the asker is told) when there is
        none the asker may read. A council they may not read gets the very answer a number never used
        gets, so the answer tells nothing of it."""
        if council_id is not None:
            council = await repo.get_council(self.bot.db, council_id)
            if council is None or not await self._may_read(interaction, council):
                await refuse(interaction, no_council(council_id))
                return None
            return council
        if interaction.channel is not None:
            council = await repo.get_council_by_thread(self.bot.db, interaction.channel.id)
            if council is not None and await self._may_read(interaction, council):
                return council
        await refuse(interaction, NOT_A_COUNCIL_THREAD)
        return None

    async def _may_read(self, interaction: discord.Interaction, council: Council) -> bool:
        """Only someone who can see the council's thread (and its channel) may read anything of it."""
        member = interaction.user
        return isinstance(member, discord.Member) and await access.can_read(member, council)

    async def _readable(self, interaction: discord.Interaction) -> ReadableCouncils:
        """The server's councils the asker may read, for lists and aggregates."""
        member = interaction.user
        if not isinstance(member, discord.Member):
            return ReadableCouncils(frozenset())
        return await access.readable(self.bot.db, member)

    async def _is_moderator(self, interaction: discord.Interaction) -> bool:
        """The governance cog's own test (the server's moderator role, or Manage Server); without that cog
        loaded, nobody is taken for a moderator."""
        governance = self.bot.get_cog("GovernanceCog")
        return governance is not None and await cast("GovernanceCog", governance).is_moderator(interaction)

    async def _find_controllable(self, interaction: discord.Interaction) -> Council | None:
        council = await self._find(interaction, None)
        if council is None:
            return None
        if interaction.user.id != council.convener_id and not interaction.permissions.manage_threads:
            await refuse(
                interaction, "Only the member who convened this council or someone with Manage Threads can do that."
            )
            return None
        return council

    async def _thread_council(self, interaction: discord.Interaction) -> Council | None:
        if interaction.channel is None:
            return None
        return await repo.get_council_by_thread(self.bot.db, interaction.channel.id)


NOT_A_COUNCIL_THREAD = "Use this inside a council's thread, or give the council's number."


def no_council(council_id: int) -> str:
    return f"There is no council #{council_id} in this server."


async def refuse(interaction: discord.Interaction, text: str) -> None:
    """Tell only the person who asked; nothing has changed."""
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True)
    else:
        await interaction.response.send_message(text, ephemeral=True)


def choices(names: Iterable[str], current: str) -> list[app_commands.Choice[str]]:
    wanted = current.casefold()
    return [app_commands.Choice(name=name, value=name) for name in names if wanted in name.casefold()][:25]
