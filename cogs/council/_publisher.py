"""Shows engine output in Discord: member words through a channel webhook, notices from the bot."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import aiohttp
import discord

from bot.council.publisher import PlaceGone, StreamTrace, Table
from bot.council.ratings import Scoreboard
from bot.council.seats import Seat
from bot.governance.gate import Policy
from bot.text import split_message
from cogs.council import _embeds, _ratings
from cogs.council._errors import UNKNOWN_WEBHOOK, closed_to_us
from cogs.council._stream import EDIT_INTERVAL, DiscordMemberStream
from cogs.governance import _embeds as governance_embeds
from cogs.governance._views import escalation_view
from storage.models import Council, Escalation

if TYPE_CHECKING:
    from bot.app import CouncilBot
    from bot.council.engine import CouncilStatus

log = logging.getLogger(__name__)

WEBHOOK_NAME = "AI Council"
HISTORY_LOOKBACK = 50  # how far back to look for a post whose outcome is uncertain
# The starter embed shows a council's progress. Edits to it share the parent channel's rate limit with
# every other council there, so each council's is refreshed at most every few seconds, and a channel's
# starters at most one every two seconds; a skipped refresh is caught up by the next turn's.
PROGRESS_INTERVAL = 5.0
CHANNEL_EDIT_INTERVAL = 2.0
NO_MENTIONS = discord.AllowedMentions.none()


class DiscordPublisher:
    """The engine's CouncilPublisher for Discord. One webhook per channel, created once and reused."""

    def __init__(self, bot: CouncilBot, *, edit_interval: float = EDIT_INTERVAL) -> None:
        self.bot = bot
        self.edit_interval = edit_interval  # between two edits of one streamed message
        self._webhooks: dict[int, discord.Webhook] = {}
        self.status_source: Callable[[int], Awaitable[CouncilStatus | None]] | None = None  # set by the cog
        self._speaking: dict[int, tuple[str, ...]] = {}
        self._refreshed: dict[int, float] = {}  # council id → when its starter embed was last edited
        self._channel_edited: dict[int, float] = {}
        self._refreshing: set[int] = set()
        self._quiet: dict[int, asyncio.Event] = {}  # per council: set once nobody is answering
        self._webhook_locks: dict[int, asyncio.Lock] = {}

    async def post_member_message(
        self, council: Council, seat: Seat, content: str, *, recovering: bool = False
    ) -> list[int]:
        thread = await self._thread(council)
        chunks = split_message(content) or ["…"]
        ids = await self._already_posted(thread, await self._member_author(council, seat), chunks) if recovering else []
        for chunk in chunks[len(ids) :]:
            ids.append(await self._send_as_member(council, thread, seat, chunk))
        return ids

    async def open_stream(
        self, council: Council, seat: Seat, *, resume: StreamTrace | None = None
    ) -> DiscordMemberStream:
        """A member reply shown as it is written (see cogs/council/_stream.py)."""
        stream = DiscordMemberStream(self, council, seat, await self._thread(council), interval=self.edit_interval)
        quiet = self._quiet.get(council.id)
        if quiet is not None:
            quiet.set()  # the stream shows the member typing until its first words, then the words
        if resume is None:
            await stream.start_typing()
        else:
            await stream.resume(resume, (await self._webhook(council.channel_id)).id)
        return stream

    async def post_notice(self, council: Council, text: str, *, recovering: bool = False) -> list[int]:
        thread = await self._thread(council)
        chunks = split_message(text)
        ids = await self._already_posted(thread, None, chunks) if recovering else []
        for chunk in chunks[len(ids) :]:
            try:
                message = await thread.send(chunk, allowed_mentions=NO_MENTIONS)
            except discord.HTTPException as error:
                if not closed_to_us(error):
                    raise
                raise PlaceGone(f"council {council.id}'s thread refused a notice: {error.status}") from error
            ids.append(message.id)
        return ids

    async def post_table(self, council: Council, table: Table, *, recovering: bool = False) -> list[int]:
        thread = await self._thread(council)
        embed = _embeds.table(table)
        if recovering:
            found = await self._already_posted(thread, None, [""], embed_title=embed.title)
            if found:
                return found
        try:
            message = await thread.send(embed=embed, allowed_mentions=NO_MENTIONS)
        except discord.HTTPException as error:
            if not closed_to_us(error):
                raise
            raise PlaceGone(f"council {council.id}'s thread refused a table: {error.status}") from error
        return [message.id]

    async def post_scoreboard(self, council: Council, board: Scoreboard, *, recovering: bool = False) -> list[int]:
        """A peer-ratings scoreboard as embeds from the bot, over as many messages as Discord's limits need."""
        thread = await self._thread(council)
        pages = _ratings.scoreboard_messages(board)
        ids = await self._already_posted(thread, None, [content for content, _ in pages]) if recovering else []
        for content, embeds in pages[len(ids) :]:
            try:
                message = await thread.send(content, embeds=embeds, allowed_mentions=NO_MENTIONS)
            except discord.HTTPException as error:
                if not closed_to_us(error):
                    raise
                raise PlaceGone(f"council {council.id}'s thread refused its scoreboard: {error.status}") from error
            ids.append(message.id)
        return ids

    async def _send_as_member(self, council: Council, thread: discord.Thread, seat: Seat, chunk: str) -> int:
        """One webhook post; a deleted webhook is made again once, an uncertain failure is checked first."""
        for attempt in (1, 2):
            webhook = await self._webhook(council.channel_id)
            try:
                message = await webhook.send(
                    chunk,
                    username=seat.name,
                    avatar_url=seat.spec.avatar_url or discord.utils.MISSING,
                    thread=thread,
                    wait=True,
                    allowed_mentions=NO_MENTIONS,
                )
                return message.id
            except discord.NotFound as error:
                if error.code == UNKNOWN_WEBHOOK and attempt == 1:
                    log.warning("The webhook of channel %s was deleted; making a new one", council.channel_id)
                    self._webhooks.pop(council.channel_id, None)
                    continue
                raise PlaceGone(f"council {council.id}'s thread is gone") from error
            except (discord.DiscordServerError, aiohttp.ClientError, TimeoutError):
                # Webhook posts carry no nonce: the message may exist although the call failed.
                found = await self._already_posted(thread, (webhook.id, seat.name), [chunk])
                if found:
                    return found[0]
                if attempt == 2:
                    raise
            except discord.HTTPException as error:
                if closed_to_us(error):
                    raise PlaceGone(f"council {council.id}'s thread is closed to the bot") from error
                raise
        raise AssertionError("unreachable")

    async def _member_author(self, council: Council, seat: Seat) -> tuple[int, str]:
        return (await self._webhook(council.channel_id)).id, seat.name

    async def _already_posted(
        self,
        thread: discord.Thread,
        author: tuple[int, str] | None,
        chunks: list[str],
        *,
        embed_title: str | None = None,
    ) -> list[int]:
        """Ids of the leading `chunks` found, in order, among the thread's recent messages by `author`
        (our webhook id and a member's name, or None for the bot itself); with `embed_title`, only
        messages carrying an embed of that title count."""
        ids: list[int] = []
        try:
            history = [message async for message in thread.history(limit=HISTORY_LOOKBACK, oldest_first=False)]
        except discord.HTTPException:
            return ids
        for message in reversed(history):
            if len(ids) == len(chunks):
                break
            by_author = (
                message.author.id == getattr(self.bot.user, "id", None) and message.webhook_id is None
                if author is None
                else (message.webhook_id, message.author.name) == author
            )
            titled = embed_title is None or any(embed.title == embed_title for embed in message.embeds)
            if by_author and titled and message.content == chunks[len(ids)]:
                ids.append(message.id)
            elif ids:
                ids = []  # not a contiguous run: start over
        return ids

    def progress(self, council: Council, speaking: tuple[str, ...]) -> None:
        self._speaking[council.id] = speaking
        quiet = self._quiet.get(council.id)
        if speaking and (quiet is None or quiet.is_set()):
            quiet = self._quiet[council.id] = asyncio.Event()
            task = asyncio.create_task(self._keep_typing(council, quiet), name=f"council-{council.id}-typing")
            task.add_done_callback(
                lambda _: self._quiet.pop(council.id, None) if self._quiet.get(council.id) is quiet else None
            )
        elif not speaking and quiet is not None:
            quiet.set()
        now = time.monotonic()
        due = now - self._refreshed.get(council.id, -PROGRESS_INTERVAL) >= PROGRESS_INTERVAL
        channel_free = (
            now - self._channel_edited.get(council.channel_id, -CHANNEL_EDIT_INTERVAL) >= CHANNEL_EDIT_INTERVAL
        )
        if due and channel_free and council.id not in self._refreshing:
            self._refreshed[council.id] = self._channel_edited[council.channel_id] = now
            self._refreshing.add(council.id)
            task = asyncio.create_task(self._refresh_starter(council), name=f"council-{council.id}-starter")
            task.add_done_callback(lambda _: self._refreshing.discard(council.id))

    async def _keep_typing(self, council: Council, quiet: asyncio.Event) -> None:
        """The bot shows as typing in the thread while members think (a streamed reply shows its words
        instead). Discord shows one indicator for about ten seconds, so it is sent again every eight."""
        try:
            thread = await self._thread(council)
        except PlaceGone:
            return
        while not quiet.is_set():
            try:
                await thread.typing()
            except discord.HTTPException as error:  # only cosmetic: the replies still come
                log.info("No typing indicator in thread %s: %s", thread.id, error.status)
                return
            try:
                async with asyncio.timeout(8):
                    await quiet.wait()
            except TimeoutError:
                pass

    async def _refresh_starter(self, council: Council) -> None:
        """Show the council's progress on the message its thread was opened from (the same id as the thread)."""
        if self.status_source is None or council.thread_id is None:
            return
        report = await self.status_source(council.id)
        if report is None:
            return
        channel = self.bot.get_channel(council.channel_id)
        if not isinstance(channel, discord.TextChannel):
            return
        embed = _embeds.live(report, self._speaking.get(council.id, ()))
        try:
            await channel.get_partial_message(council.thread_id).edit(embed=embed, allowed_mentions=NO_MENTIONS)
        except discord.HTTPException as error:
            # The starter may be deleted; the council goes on in its thread either way.
            log.info("Council %s: its starter embed could not be updated: %s", council.id, error.status)

    async def council_finished(self, council: Council) -> None:
        self._speaking.pop(council.id, None)
        self._refreshed.pop(council.id, None)
        await self._refresh_starter(council)
        try:
            thread = await self._thread(council)
            await thread.send(embed=_embeds.finished(council), allowed_mentions=NO_MENTIONS)
        except (discord.HTTPException, PlaceGone) as error:
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

    async def is_member_webhook(self, channel_id: int, webhook_id: int) -> bool:
        """Whether `webhook_id` is the webhook our members post through in `channel_id`; never creates one."""
        cached = self._webhooks.get(channel_id)
        if cached is not None:
            return cached.id == webhook_id
        channel = self.bot.get_channel(channel_id)
        if not isinstance(channel, discord.TextChannel):
            return False
        try:  # after a restart, before any member has posted
            hooks = await channel.webhooks()
        except discord.HTTPException:
            return False
        return any(hook.id == webhook_id and self._is_ours(hook) for hook in hooks)

    def _is_ours(self, hook: discord.Webhook) -> bool:
        return bool(
            hook.name == WEBHOOK_NAME
            and hook.token
            and hook.user
            and self.bot.user
            and hook.user.id == self.bot.user.id
        )

    def is_own_webhook(self, webhook_id: int | None) -> bool:
        return webhook_id is not None and any(w.id == webhook_id for w in self._webhooks.values())

    async def _thread(self, council: Council) -> discord.Thread:
        if council.thread_id is None:
            raise PlaceGone(f"council {council.id} has no thread")
        try:
            channel = self.bot.get_channel(council.thread_id) or await self.bot.fetch_channel(council.thread_id)
        except (discord.NotFound, discord.Forbidden) as error:
            raise PlaceGone(f"council {council.id}'s thread is gone") from error
        if not isinstance(channel, discord.Thread):
            raise PlaceGone(f"council {council.id}'s thread {council.thread_id} is not a thread")
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
            mine = [hook for hook in await channel.webhooks() if self._is_ours(hook)]
            webhook = (
                mine[0]
                if mine
                else await channel.create_webhook(
                    name=WEBHOOK_NAME, reason="AI Council members post through this webhook"
                )
            )
            self._webhooks[channel_id] = webhook
            return webhook
