"""Escalation buttons that survive restarts: the escalation id lives in the custom_id, its state in the database."""

from __future__ import annotations

import re
from typing import Any, Protocol

import discord

from bot.council.validation import clean_text


class Decider(Protocol):
    """What a click asks of the governance cog (cogs/governance/_cog.py): to decide the escalation."""

    async def decide_from_click(
        self,
        interaction: discord.Interaction,
        escalation_id: int,
        *,
        approve: bool,
        end_council: bool,
        reason: str | None = None,
    ) -> None: ...


ACTIONS = {
    "approve": ("Approve", discord.ButtonStyle.success),
    "reject": ("Reject", discord.ButtonStyle.danger),
    "reason": ("Reject with reason", discord.ButtonStyle.secondary),
    "end": ("Reject and end council", discord.ButtonStyle.danger),
}


class EscalationButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"esc:(?P<id>[0-9]+):(?P<action>[a-z]+)"
):
    def __init__(self, escalation_id: int, action: str, *, disabled: bool = False) -> None:
        label, style = ACTIONS[action]
        super().__init__(
            discord.ui.Button(label=label, style=style, custom_id=f"esc:{escalation_id}:{action}", disabled=disabled)
        )
        self.escalation_id = escalation_id
        self.action = action

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> EscalationButton:
        action = match["action"]
        if action not in ACTIONS:
            raise ValueError(f"unknown escalation action {action!r}")
        return cls(int(match["id"]), action)

    async def callback(self, interaction: discord.Interaction) -> None:
        cog: Decider | None = interaction.client.get_cog("GovernanceCog")  # type: ignore[attr-defined]
        if cog is None:
            await interaction.response.send_message("Governance is not loaded right now.", ephemeral=True)
            return
        if self.action == "reason":
            # A modal must be the first response, so the moderator check happens when it is submitted.
            await interaction.response.send_modal(RejectReasonModal(self.escalation_id))
            return
        # Acknowledge first: Discord allows three seconds, the database may take longer under load.
        await interaction.response.defer(ephemeral=True, thinking=True)
        await cog.decide_from_click(
            interaction, self.escalation_id, approve=self.action == "approve", end_council=self.action == "end"
        )


class RejectReasonModal(discord.ui.Modal, title="Reject with reason"):
    reason: discord.ui.TextInput[RejectReasonModal] = discord.ui.TextInput(
        label="Why is this message rejected?",
        custom_id="reason",
        style=discord.TextStyle.paragraph,
        min_length=3,
        max_length=500,
        placeholder="The member is told this in its next prompt.",
    )

    def __init__(self, escalation_id: int) -> None:
        super().__init__(custom_id=f"esc-reason:{escalation_id}")
        self.escalation_id = escalation_id

    async def on_submit(self, interaction: discord.Interaction) -> None:
        reason = clean_text(self.reason.value)
        if not reason:
            await interaction.response.send_message("Please give a reason; nothing was decided.", ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        cog: Decider | None = interaction.client.get_cog("GovernanceCog")  # type: ignore[attr-defined]
        if cog is not None:
            await cog.decide_from_click(
                interaction, self.escalation_id, approve=False, end_council=False, reason=reason
            )


def escalation_view(escalation_id: int, *, decided: bool = False) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for action in ACTIONS:
        view.add_item(EscalationButton(escalation_id, action, disabled=decided))
    return view
