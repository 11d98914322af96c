"""Shows engine output in Discord: member words through a channel webhook, notices from the bot."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import discord

from bot.council.seats import Seat
from bot.governance.gate import Policy
from bot.text import split_message
from cogs.council import _embeds
from cogs.governance import _embeds as governance_embeds
from cogs.governance._views import escalation_view
from storage.models import Council, Escalation

if TYPE_CHECKING:
    from bot.app import CouncilBot

log = logging.getLogger(__name__)

WEBHOOK_NAME = "AI Council"
NO_MENTIONS = discord.AllowedMentions.none()


class DiscordPublisher:
    """The engine's CouncilPublisher for Discord. One webhook per channel, created once and reused."""

    def __init__(self, bot: CouncilBot) -> None:
        self.bot = bot
        self._webhooks: dict[int, discord.Webhook] = {}
        self._webhook_locks: dict[int, asyncio.Lock] = {}

    async def post_member_message(self, council: Council, seat: Seat, content: str) -> list[int]:
        thread = await self._thread(council)
        webhook = await self._webhook(council.channel_id)
        ids: list[int] = []
        for chunk in split_message(content) or ["…"]:
            message = await webhook.send(
                chunk,
                username=seat.name,
                avatar_url=seat.spec.avatar_url or discord.utils.MISSING,
                thread=thread,
                wait=True,
                allowed_mentions=NO_MENTIONS,
            )
            ids.append(message.id)
        return ids

    async def post_notice(self, council: Council, text: str) -> list[int]:
        thread = await self._thread(council)
        ids = []
        for chunk in split_message(text):
            message = await thread.send(chunk, allowed_mentions=NO_MENTIONS)
            ids.append(message.id)
        return ids

    async def council_finished(self, council: Council) -> None:
        try:
            thread = await self._thread(council)
            await thread.send(embed=_embeds.finished(council), allowed_mentions=NO_MENTIONS)
        except discord.HTTPException as error:
            # The thread may be gone; the transcript stays in the database either way.
            log.warning("Could not post the closing embed of council %s: %s", council.id, error)

    async def post_escalation(self, council: Council, escalation: Escalation, policy: Policy) -> tuple[int, int] | None:
        """Put a concern before the moderators; only their role is ever pinged."""
        if policy.moderator_channel_id is None:
            return None
        channel = self.bot.get_channel(policy.moderator_channel_id)
        if not isinstance(channel, discord.TextChannel):
            log.warning("Moderators' channel %s of guild %s is gone", policy.moderator_channel_id, council.guild_id)
            return None
        role_id = policy.moderator_role_id
        message = await channel.send(
            f"<@&{role_id}>" if role_id else None,
            embed=governance_embeds.escalation(escalation, council),
            view=escalation_view(escalation.id),
            allowed_mentions=discord.AllowedMentions(roles=[discord.Object(role_id)]) if role_id else NO_MENTIONS,
        )
        return channel.id, message.id

    async def escalation_decided(self, council: Council, escalation: Escalation) -> None:
        """Show the outcome on the escalation and disable its buttons."""
        if escalation.mod_channel_id is None or escalation.mod_message_id is None:
            return
        channel = self.bot.get_channel(escalation.mod_channel_id)
        if not isinstance(channel, discord.TextChannel):
            return
        try:
            await channel.get_partial_message(escalation.mod_message_id).edit(
                embed=governance_embeds.escalation(escalation, council),
                view=escalation_view(escalation.id, decided=True),
                allowed_mentions=NO_MENTIONS,
            )
        except discord.NotFound:
            log.info("Escalation %s's message was deleted; its decision is recorded", escalation.id)

    async def delete_messages(self, council: Council, message_ids: list[int]) -> None:
        """Remove a member's withdrawn words from the thread (a webhook may delete its own messages)."""
        thread = await self._thread(council)
        webhook = await self._webhook(council.channel_id)
        for message_id in message_ids:
            with contextlib.suppress(discord.NotFound):
                await webhook.delete_message(message_id, thread=thread)

    def is_own_webhook(self, webhook_id: int | None) -> bool:
        return webhook_id is not None and any(w.id == webhook_id for w in self._webhooks.values())

    async def _thread(self, council: Council) -> discord.Thread:
        if council.thread_id is None:
            raise RuntimeError(f"council {council.id} has no thread yet")
        channel = self.bot.get_channel(council.thread_id) or await self.bot.fetch_channel(council.thread_id)
        if not isinstance(channel, discord.Thread):
            raise RuntimeError(f"council {council.id}'s thread {council.thread_id} is not a thread")
        return channel

    async def _webhook(self, channel_id: int) -> discord.Webhook:
        cached = self._webhooks.get(channel_id)
        if cached is not None:
            return cached
        async with self._webhook_locks.setdefault(channel_id, asyncio.Lock()):
            cached = self._webhooks.get(channel_id)
            if cached is not None:
                return cached
            channel = self.bot.get_channel(channel_id) or await self.bot.fetch_channel(channel_id)
            if not isinstance(channel, discord.TextChannel):
                raise RuntimeError(f"channel {channel_id} cannot hold webhooks")
            mine = [
                hook
                for hook in await channel.webhooks()
                if hook.name == WEBHOOK_NAME
                and hook.token
                and hook.user
                and self.bot.user
                and hook.user.id == self.bot.user.id
            ]
            webhook = (
                mine[0]
                if mine
                else await channel.create_webhook(
                    name=WEBHOOK_NAME, reason="AI Council members post through this webhook"
                )
            )
            self._webhooks[channel_id] = webhook
            return webhook
