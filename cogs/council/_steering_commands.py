"""/council assign, mode, invite and dismiss: changing a council between turns, from its thread."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import discord
from discord import app_commands

from bot.council.engine import ConveneError
from cogs.council._base import MODE_CHOICES, CouncilCommands, choices, council, refuse

T = TypeVar("T")


class SteeringCommands(CouncilCommands):
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
            await refuse(interaction, str(error))
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
        await self._steer(
            interaction,
            "mode",
            lambda council_id, **who: self.engine.steering.switch_mode(council_id, mode, **who),
            lambda council_id, _: f"Council #{council_id} deliberates in {mode} mode from now on.",
        )

    @council.command(name="invite")
    @app_commands.describe(member="A member from the catalog (see /council members)")
    async def invite(self, interaction: discord.Interaction, member: app_commands.Range[str, 1, 64]) -> None:
        """Seat another member at this thread's council; it speaks from the next round on."""
        await self._steer(
            interaction,
            "invite",
            lambda council_id, **who: self.engine.steering.invite(council_id, member, **who),
            lambda council_id, seat: f"{seat.name} joins council #{council_id}.",
        )

    @council.command(name="dismiss")
    @app_commands.describe(member="The member's name, e.g. DeepSeek")
    async def dismiss(self, interaction: discord.Interaction, member: app_commands.Range[str, 1, 64]) -> None:
        """Send a member away from this thread's council; its words stay in the transcript."""
        await self._steer(
            interaction,
            "dismiss",
            lambda council_id, **who: self.engine.steering.dismiss(council_id, member, **who),
            lambda council_id, seat: f"{seat.name} has left council #{council_id}.",
        )

    async def _steer(
        self,
        interaction: discord.Interaction,
        kind: str,
        change: Callable[..., Awaitable[T]],
        done: Callable[[int, T], str],
    ) -> None:
        """A change the engine announces in the thread; the one who asked is told privately how it went.
        The interaction's id keys the announcement, so a retried interaction announces it once."""
        council = await self._find_controllable(interaction)
        if council is None:
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            result = await change(council.id, by=interaction.user.display_name, key=f"{kind}:{interaction.id}")
        except ConveneError as error:
            await refuse(interaction, str(error))
            return
        await interaction.followup.send(done(council.id, result), ephemeral=True)

    @invite.autocomplete("member")
    async def _catalog_names(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        # Members already at the table (benched ones too) would only be refused; dismissed ones may come back.
        council = await self._thread_council(interaction)
        seated = {s.name for s in await self.engine.seats(council.id) if not s.dismissed} if council else set()
        return choices((spec.name for spec in self.bot.catalog if spec.name not in seated), current)

    @dismiss.autocomplete("member")
    @assign.autocomplete("member")
    async def _seated_names(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        council = await self._thread_council(interaction)
        if council is None:
            return []
        return choices((seat.name for seat in await self.engine.seats(council.id) if seat.active), current)
