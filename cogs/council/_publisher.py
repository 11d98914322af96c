"""Shows engine output in Discord: member words through a channel webhook, notices from the bot."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import discord

from bot.council.publisher import (
    HeardMessage,
    PermissionMissing,
    PlaceGone,
    PlaceUnavailable,
    PostProgress,
    PostRefused,
    StreamTrace,
    Table,
)
from bot.council.scoreboard import Scoreboard
from bot.council.seats import Seat
from bot.governance.gate import Policy
from bot.text import split_message
from cogs.council import _charts, _embeds, _ratings
from cogs.council._budget import DiscordBudget, Priority
from cogs.council._errors import (
    MAX_WEBHOOKS,
    THREAD_NEEDS,
    UNCERTAIN,
    UNKNOWN_WEBHOOK,
    describe,
    missing_permissions,
    translate,
)
from cogs.council._files import shared_files
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
CATCH_UP_LIMIT = 500  # the most messages read from a thread's history for what humans wrote while we were away
# The starter embed shows a council's progress. Edits to it share the parent channel's rate limit with
# every other council there, so each council's is refreshed at most every few seconds, and a channel's
# starters at most one every two seconds; a skipped refresh is caught up by the next turn's.
PROGRESS_INTERVAL = 5.0
CHANNEL_EDIT_INTERVAL = 2.0
# A council waiting out an outage says so in its thread once the wait has lasted this long.
OUTAGE_NOTICE_AFTER = 60.0
NO_MENTIONS = discord.AllowedMentions.none()
TYPING_SHOWS = 8.0  # seconds: Discord shows a typing indicator for about ten; sent again after eight
TYPING_RETRY = 1.0  # seconds before a typing indicator the rate budget skipped is tried again
HUMAN_TYPES = (discord.MessageType.default, discord.MessageType.reply)
MAX_SLOTS = 10  # webhooks per channel at most: Discord allows 15, and servers use some of their own
WEBHOOK_NEEDS = {"manage_webhooks": "Manage Webhooks"}


def webhook_name(slot: int) -> str:
    """Councils of a channel post through several webhooks (each takes about 5 posts per 2 s); slot 0 is
    "AI Council", then "AI Council 2", … Found again by name after a restart."""
    return WEBHOOK_NAME if slot == 0 else f"{WEBHOOK_NAME} {slot + 1}"


class DiscordPublisher:
    """The engine's CouncilPublisher for Discord. Members post through the channel's webhooks, each council
    through one of `webhooks_per_channel` (by its number), created when first needed and reused."""

    def __init__(
        self,
        bot: CouncilBot,
        *,
        edit_interval: float = EDIT_INTERVAL,
        webhooks_per_channel: int = 1,
        outage_notice_after: float = OUTAGE_NOTICE_AFTER,
        channel_edit_interval: float = CHANNEL_EDIT_INTERVAL,
        budget: DiscordBudget | None = None,
    ) -> None:
        self.bot = bot
        # Every request asks Discord's rate budget first (cogs/council/_budget.py).
        self.budget = budget or DiscordBudget()
        self.channel_edit_interval = channel_edit_interval  # between two starter edits in one channel
        self.edit_interval = edit_interval  # between two edits of one streamed message
        self.webhooks_per_channel = webhooks_per_channel
        self.outage_notice_after = outage_notice_after
        self._webhooks: dict[tuple[int, int], discord.Webhook] = {}  # (channel id, slot)
        self.status_source: Callable[[int], Awaitable[CouncilStatus | None]] | None = None  # set by the cog
        self._speaking: dict[int, tuple[str, ...]] = {}
        self._refreshed: dict[int, float] = {}  # council id → when its starter embed was last edited
        self._channel_edited: dict[int, float] = {}
        self._refreshing: set[int] = set()
        self._quiet: dict[int, asyncio.Event] = {}  # per council: set once nobody is answering
        self._webhook_locks: dict[tuple[int, int], asyncio.Lock] = {}
        self._councils: dict[int, Council] = {}  # the latest copy seen of each council shown here
        self._reports: dict[int, CouncilStatus] = {}  # the last status shown on each starter embed
        self._outages: dict[int, _Outage] = {}  # councils waiting out an outage now
        self._tasks: set[asyncio.Task[None]] = set()  # typing, starter refreshes, outage notices
        self._typing_until: dict[int, float] = {}  # thread id -> until when its last typing indicator shows

    async def close(self) -> None:
        """Stop the background work (typing indicators, starter refreshes, outage notices) at shutdown."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _background(self, work: Awaitable[None], name: str) -> asyncio.Task[None]:
        """Run cosmetic work beside the council: kept (so it is cancelled at shutdown) and its errors logged."""

        async def guarded() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Background work %s failed; the council goes on", name)

        task = asyncio.create_task(guarded(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- posting -----------------------------------------------------------------------------------

    async def post_member_message(
        self,
        council: Council,
        seat: Seat,
        content: str,
        *,
        recovering: bool = False,
        shown: Sequence[int] = (),
        progress: PostProgress | None = None,
    ) -> list[int]:
        self._councils[council.id] = council
        thread = await self._thread(council)
        chunks = split_message(content) or ["…"]
        ids = list(shown)[: len(chunks)]
        if recovering and len(ids) < len(chunks):
            author = (await self.webhook_for(council)).id, seat.name
            ids += await self._already_posted(thread, author, chunks[len(ids) :])
        for chunk in chunks[len(ids) :]:
            ids.append(await self.send_as_member(council, thread, seat, chunk))
            if progress is not None and len(ids) < len(chunks):
                await progress(list(ids))
        return ids

    async def open_stream(
        self, council: Council, seat: Seat, *, resume: StreamTrace | None = None
    ) -> DiscordMemberStream:
        """A member reply shown as it is written (see cogs/council/_stream.py)."""
        self._councils[council.id] = council
        stream = DiscordMemberStream(
            self, council, seat, await self._thread(council), interval=self.edit_interval, budget=self.budget
        )
        # The member shows as typing (the council's typing indicator, kept while anyone answers) until its first
        # words, which stop it (`stop_typing`).
        if resume is not None:
            await stream.resume(resume, (await self.webhook_for(council)).id)
        return stream

    def stop_typing(self, council: Council) -> None:
        """A streamed reply's first words show: the council's typing indicator is not sent again for now."""
        quiet = self._quiet.get(council.id)
        if quiet is not None:
            quiet.set()

    async def post_notice(
        self,
        council: Council,
        text: str,
        *,
        recovering: bool = False,
        shown: Sequence[int] = (),
        progress: PostProgress | None = None,
    ) -> list[int]:
        thread = await self._thread(council)
        chunks = split_message(text)
        ids = list(shown)[: len(chunks)]
        if recovering and len(ids) < len(chunks):
            ids += await self._already_posted(thread, None, chunks[len(ids) :])
        for chunk in chunks[len(ids) :]:
            ids.append(await self._send_as_bot(thread, chunk, owner=council.id))
            if progress is not None and len(ids) < len(chunks):
                await progress(list(ids))
        return ids

    async def post_table(self, council: Council, table: Table, *, recovering: bool = False) -> list[int]:
        thread = await self._thread(council)
        embed = _embeds.table(table)
        if recovering:
            found = await self._already_posted(thread, None, [""], embed_title=embed.title)
            if found:
                return found
        picture = await _charts.ranking_picture(council.id or 0, table, self.bot.catalog)
        if picture is not None:
            embed.set_image(url=picture.url)
        return [await self._send_as_bot(thread, "", embeds=[embed], owner=council.id, picture=picture)]

    async def post_scoreboard(self, council: Council, board: Scoreboard, *, recovering: bool = False) -> list[int]:
        """A peer-ratings scoreboard as embeds from the bot, over as many messages as Discord's limits need."""
        thread = await self._thread(council)
        pages = _ratings.scoreboard_messages(board)
        ids = await self._already_posted(thread, None, [content for content, _ in pages]) if recovering else []
        # The chart goes with the first message, under the table it draws.
        picture = await _charts.scoreboard_picture(board, self.bot.catalog) if not ids else None
        if picture is not None:
            pages[0][1][0].set_image(url=picture.url)
        for content, embeds in pages[len(ids) :]:
            first = not ids
            ids.append(
                await self._send_as_bot(
                    thread, content, embeds=embeds, owner=council.id, picture=picture if first else None
                )
            )
        return ids

    async def _send_as_bot(
        self,
        thread: discord.Thread,
        content: str,
        *,
        embeds: Sequence[discord.Embed] = (),
        priority: Priority = Priority.WORDS,
        owner: int | None = None,
        picture: _charts.Picture | None = None,
    ) -> int:
        """One message from the bot itself; an uncertain failure is looked for before it is sent again."""
        for attempt in (1, 2):
            try:
                await self.budget.spend(("create", thread.id), priority, owner=owner)
                files = [picture.file()] if picture is not None else []
                message = await thread.send(
                    content or None, embeds=list(embeds), files=files, allowed_mentions=NO_MENTIONS
                )
                return message.id
            except UNCERTAIN as error:
                found = await self._already_posted(
                    thread, None, [content], embed_title=embeds[0].title if embeds and not content else None
                )
                if found:
                    return found[0]
                if attempt == 2:
                    raise translate(error, thread, THREAD_NEEDS, f"thread {thread.id}") from error
            except discord.HTTPException as error:
                if error.status == 429 and attempt == 1:  # after discord.py's own retries: one more, later
                    await asyncio.sleep(1)
                    continue
                raise translate(error, thread, THREAD_NEEDS, f"thread {thread.id}") from error
        raise AssertionError("unreachable")

    async def send_as_member(self, council: Council, thread: discord.Thread, seat: Seat, chunk: str) -> int:
        """One webhook post; a deleted webhook is made again once, an uncertain failure is checked first."""
        for attempt in (1, 2):
            webhook = await self.webhook_for(council)
            try:
                await self.budget.spend(("webhook", webhook.id), Priority.WORDS, owner=council.id)
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
                    log.warning("A webhook of channel %s was deleted; making a new one", council.channel_id)
                    self._forget_webhook(council)
                    continue
                raise PlaceGone(f"council {council.id}'s thread is gone") from error
            except UNCERTAIN as error:
                # Webhook posts carry no nonce: the message may exist although the call failed.
                found = await self._already_posted(thread, (webhook.id, seat.name), [chunk])
                if found:
                    return found[0]
                if attempt == 2:
                    raise translate(error, thread, THREAD_NEEDS, f"council {council.id}'s webhook") from error
            except discord.HTTPException as error:
                if error.status == 429 and attempt == 1:  # after discord.py's own retries: one more, later
                    await asyncio.sleep(1)
                    continue
                raise translate(error, thread, THREAD_NEEDS, f"council {council.id}'s webhook") from error
        raise AssertionError("unreachable")

    async def _already_posted(
        self,
        thread: discord.Thread,
        author: tuple[int, str] | None,
        chunks: Sequence[str],
        *,
        embed_title: str | None = None,
    ) -> list[int]:
        """Ids of the leading `chunks` found, in order, among the thread's recent messages by `author`
        (our webhook id and a member's name, or None for the bot itself); with `embed_title`, only
        messages carrying an embed of that title count."""
        ids: list[int] = []
        try:
            await self.budget.spend(("history", thread.id), Priority.WORDS)
            history = [message async for message in thread.history(limit=HISTORY_LOOKBACK, oldest_first=False)]
        except (discord.HTTPException, *UNCERTAIN):
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

    # -- what the transcript does not keep ---------------------------------------------------------

    async def warn(self, council: Council, text: str) -> None:
        """In the thread if the bot can still post there, else privately to the convener."""
        try:
            thread = await self._thread(council)
            await self.budget.spend(("create", thread.id), Priority.NOTICE)
            await thread.send(text, allowed_mentions=NO_MENTIONS)
            return
        except (discord.HTTPException, PlaceGone, PermissionMissing, PlaceUnavailable, *UNCERTAIN) as error:
            log.info("Council %s: a warning could not go to its thread (%s); telling the convener", council.id, error)
        await self.tell_convener(council, text)

    async def tell_convener(self, council: Council, text: str) -> None:
        try:
            user = self.bot.get_user(council.convener_id) or await self.bot.fetch_user(council.convener_id)
            await self.budget.spend(("dm", council.convener_id), Priority.NOTICE)
            await user.send(text, allowed_mentions=NO_MENTIONS)
        except (discord.HTTPException, *UNCERTAIN) as error:
            # Their direct messages may be closed to the bot: the log is the last place left.
            log.warning("Council %s: its convener could not be told (%s)", council.id, type(error).__name__)

    async def settle_starter(self, council: Council) -> int | None:
        """Find the council's starter embed among the channel's recent messages (by its title); a starter
        that got its thread gives that thread, one that did not is deleted."""
        channel = self.bot.get_channel(council.channel_id)
        if not isinstance(channel, discord.TextChannel):
            return None
        title = f"Council #{council.id}:"
        try:
            await self.budget.spend(("history", channel.id), Priority.NOTICE)
            async for message in channel.history(limit=HISTORY_LOOKBACK):
                mine = message.author.id == getattr(self.bot.user, "id", None) and message.webhook_id is None
                if not mine or not any((embed.title or "").startswith(title) for embed in message.embeds):
                    continue
                if message.flags.has_thread or message.thread is not None:
                    return message.id  # a thread opened from a message has that message's id
                await self.budget.spend(("edit", channel.id), Priority.NOTICE)
                await message.delete()
                return None
        except (discord.HTTPException, *UNCERTAIN) as error:
            log.warning("Council %s: its starter could not be looked for or removed: %s", council.id, error)
        return None

    async def missed_messages(self, council: Council, after: int | None) -> list[HeardMessage]:
        """What humans wrote in the thread after message `after`, oldest first, at most CATCH_UP_LIMIT."""
        thread = await self._thread(council)
        heard: list[HeardMessage] = []
        try:
            await self.budget.spend(("history", thread.id), Priority.WORDS, owner=council.id)
            async for message in thread.history(
                limit=CATCH_UP_LIMIT, after=discord.Object(after) if after else None, oldest_first=True
            ):
                if message.webhook_id is not None or message.author.bot or message.type not in HUMAN_TYPES:
                    continue
                heard.append(
                    HeardMessage(
                        message_id=message.id,
                        author_id=message.author.id,
                        author_name=message.author.display_name,
                        content=message.clean_content,
                        replied_to=await self.replied_member(message, thread),
                        files=await shared_files(message),
                    )
                )
        except discord.HTTPException as error:
            raise translate(error, thread, THREAD_NEEDS, f"council {council.id}'s history") from error
        except UNCERTAIN as error:
            raise translate(error, thread, THREAD_NEEDS, f"council {council.id}'s history") from error
        return heard

    async def replied_member(self, message: discord.Message, thread: discord.Thread) -> str | None:
        """The name on the member's message this one replies to, if it replies to one."""
        reference = message.reference
        replied = reference.resolved if reference is not None else None
        if not isinstance(replied, discord.Message) or replied.webhook_id is None or thread.parent_id is None:
            return None
        # Members post through our webhooks under their own names (the engine checks the name is seated);
        # anyone else's webhook can post under those names too, and does not speak for a member.
        if not await self.is_member_webhook(thread.parent_id, replied.webhook_id):
            return None
        return replied.author.name

    def waiting(self, council_id: int, why: str | None) -> None:
        """The council waits out an outage (`why`), or no longer (None): the starter embed says so at once,
        and the thread once the wait has lasted OUTAGE_NOTICE_AFTER."""
        council = self._councils.get(council_id)
        if why is None:
            outage = self._outages.pop(council_id, None)
            if outage is not None:
                outage.over.set()
            if council is not None:
                self._refreshed.pop(council_id, None)
                self.progress(council, self._speaking.get(council_id, ()))
            return
        if council_id in self._outages or council is None:
            return
        outage = self._outages[council_id] = _Outage(why, time.monotonic())
        self._background(self._show_outage(council, outage), f"council-{council_id}-outage")

    async def _show_outage(self, council: Council, outage: _Outage) -> None:
        await self._edit_starter(council, waiting=outage.why)
        try:
            async with asyncio.timeout(self.outage_notice_after):
                await outage.over.wait()
            return  # over before anyone needed telling
        except TimeoutError:
            pass
        thread = await self._thread(council)
        await self.budget.spend(("create", thread.id), Priority.NOTICE)
        notice = await thread.send(
            f"⏳ This council is waiting: {outage.why}. It goes on by itself when that is over; nothing is lost.",
            allowed_mentions=NO_MENTIONS,
        )
        await outage.over.wait()
        await self.budget.spend(("edit", thread.id), Priority.NOTICE)
        await notice.edit(
            content=f"⏳ This council waited {_duration(time.monotonic() - outage.since)}: {outage.why}. It goes on.",
            allowed_mentions=NO_MENTIONS,
        )

    def progress(self, council: Council, speaking: tuple[str, ...]) -> None:
        self._councils[council.id] = council
        self._speaking[council.id] = speaking
        quiet = self._quiet.get(council.id)
        if speaking and (quiet is None or quiet.is_set()):
            quiet = self._quiet[council.id] = asyncio.Event()
            task = self._background(self._keep_typing(council, quiet), f"council-{council.id}-typing")
            task.add_done_callback(
                lambda _: self._quiet.pop(council.id, None) if self._quiet.get(council.id) is quiet else None
            )
        elif not speaking and quiet is not None:
            quiet.set()
        now = time.monotonic()
        due = now - self._refreshed.get(council.id, -PROGRESS_INTERVAL) >= PROGRESS_INTERVAL
        if due and self._channel_free(council.channel_id, now) and council.id not in self._refreshing:
            self._refreshed[council.id] = self._channel_edited[council.channel_id] = now
            self._refreshing.add(council.id)
            task = self._background(self._refresh_starter(council, optional=True), f"council-{council.id}-starter")
            task.add_done_callback(lambda _: self._refreshing.discard(council.id))

    def _channel_free(self, channel_id: int, now: float) -> bool:
        interval = self.channel_edit_interval
        return now - self._channel_edited.get(channel_id, -interval) >= interval

    async def _channel_turn(self, channel_id: int) -> None:
        """Wait for the channel's next free edit slot and take it (an edit that must not be skipped)."""
        while True:
            now = time.monotonic()
            if self._channel_free(channel_id, now):
                self._channel_edited[channel_id] = now
                return
            await asyncio.sleep(self._channel_edited[channel_id] + self.channel_edit_interval - now)

    async def _keep_typing(self, council: Council, quiet: asyncio.Event) -> None:
        """The bot shows as typing in the thread while members think (a streamed reply shows its words
        instead). Discord shows one indicator for about ten seconds, so it is sent again every eight, and not at
        all while the one before still shows (one turn ends, the next begins)."""
        try:
            thread = await self._thread(council)
        except (PlaceGone, PermissionMissing):
            return
        while not quiet.is_set():
            wait = TYPING_SHOWS
            try:
                if time.monotonic() < self._typing_until.get(thread.id, 0.0):
                    pass  # the indicator of the turn before still shows: no request needed
                elif self.budget.available(("typing", thread.id)):  # only cosmetic: skipped when Discord is busy
                    await self.budget.spend(("typing", thread.id), Priority.PROGRESS)
                    await thread.typing()
                    self._typing_until[thread.id] = time.monotonic() + TYPING_SHOWS
                else:
                    self.budget.skip()
                    wait = TYPING_RETRY  # a moment of many requests passes soon: try again then
            except (discord.HTTPException, *UNCERTAIN) as error:  # only cosmetic: the replies still come
                log.info("No typing indicator in thread %s: %s", thread.id, error)
                return
            try:
                async with asyncio.timeout(wait):
                    await quiet.wait()
            except TimeoutError:
                pass

    async def _refresh_starter(self, council: Council, *, optional: bool = False) -> None:
        """Show the council's progress on the message its thread was opened from (the same id as the thread).
        `optional`: a progress refresh, skipped when Discord's budget has no room for it now (a later one or the
        council's end shows newer progress anyway)."""
        if self.status_source is None or council.thread_id is None:
            return
        report = await self.status_source(council.id)
        if report is None:
            return
        self._reports[council.id] = report
        outage = self._outages.get(council.id)
        await self._edit_starter(council, waiting=outage.why if outage else None, optional=optional)

    async def _edit_starter(self, council: Council, *, waiting: str | None = None, optional: bool = False) -> None:
        """Edit the starter embed from the last status read (the database may be away)."""
        report = self._reports.get(council.id)
        channel = self.bot.get_channel(council.channel_id)
        if report is None or council.thread_id is None or not isinstance(channel, discord.TextChannel):
            return
        embed = _embeds.live(report, self._speaking.get(council.id, ()), waiting=waiting)
        if optional and not self.budget.available(("edit", channel.id), Priority.PROGRESS):
            self.budget.skip()
            return
        try:
            await self.budget.spend(("edit", channel.id), Priority.STATUS, owner=council.id)
            await channel.get_partial_message(council.thread_id).edit(embed=embed, allowed_mentions=NO_MENTIONS)
        except (discord.HTTPException, *UNCERTAIN) as error:
            # The starter may be deleted; the council goes on in its thread either way.
            log.info("Council %s: its starter embed could not be updated: %s", council.id, error)

    async def council_finished(self, council: Council) -> None:
        self._speaking.pop(council.id, None)
        self._refreshed.pop(council.id, None)
        outage = self._outages.pop(council.id, None)
        if outage is not None:
            outage.over.set()
        self._councils.pop(council.id, None)
        self._background(self._show_end_on_starter(council), f"council-{council.id}-starter-end")
        try:
            thread = await self._thread(council)
            await self._send_as_bot(thread, "", embeds=[_embeds.finished(council)], owner=council.id)
        except (PlaceGone, PermissionMissing, PlaceUnavailable, PostRefused) as error:
            # The thread may be gone; the transcript stays in the database either way.
            log.warning("Could not post the closing embed of council %s: %s", council.id, error)

    async def _show_end_on_starter(self, council: Council) -> None:
        # Paced like every starter edit, waiting its turn instead of skipping: many councils may end at once.
        await self._channel_turn(council.channel_id)
        await self._refresh_starter(council)
        self._reports.pop(council.id, None)

    async def post_escalation(self, council: Council, escalation: Escalation, policy: Policy) -> tuple[int, int] | None:
        """Put a concern before the moderators; only their role is ever pinged."""
        if policy.moderator_channel_id is None:
            return None
        channel = self.bot.get_channel(policy.moderator_channel_id)
        if not isinstance(channel, discord.TextChannel):
            log.warning("Moderators' channel %s of guild %s is gone", policy.moderator_channel_id, council.guild_id)
            return None
        role_id = policy.moderator_role_id
        await self.budget.spend(("create", channel.id), Priority.NOTICE)
        message = await channel.send(
            f"<@&{role_id}>" if role_id else None,
            embed=governance_embeds.escalation(escalation, council),
            view=escalation_view(escalation.id),
            allowed_mentions=discord.AllowedMentions(roles=[discord.Object(role_id)]) if role_id else NO_MENTIONS,
        )
        return channel.id, message.id

    async def escalation_changed(self, council: Council, escalation: Escalation) -> None:
        """Show the escalation as it is now (its reports, its outcome); a decided one's buttons are disabled.
        Never pings anyone."""
        if escalation.mod_channel_id is None or escalation.mod_message_id is None:
            return
        channel = self.bot.get_channel(escalation.mod_channel_id)
        if not isinstance(channel, discord.TextChannel):
            return
        try:
            await self.budget.spend(("edit", channel.id), Priority.NOTICE)
            await channel.get_partial_message(escalation.mod_message_id).edit(
                embed=governance_embeds.escalation(escalation, council),
                view=escalation_view(escalation.id, decided=escalation.state != "pending"),
                allowed_mentions=NO_MENTIONS,
            )
        except discord.NotFound:
            log.info("Escalation %s's message was deleted; what it says is recorded", escalation.id)
        except (discord.HTTPException, *UNCERTAIN) as error:
            log.info("Escalation %s could not be shown as it is now (%s); it is recorded", escalation.id, error)

    async def delete_messages(self, council: Council, message_ids: list[int]) -> None:
        """Remove a member's withdrawn words from the thread (a webhook may delete its own messages)."""
        thread = await self._thread(council)
        webhook = await self.webhook_for(council)
        for message_id in message_ids:
            await self.budget.spend(("webhook", webhook.id), Priority.WORDS, owner=council.id)
            with contextlib.suppress(discord.NotFound):
                await webhook.delete_message(message_id, thread=thread)

    async def is_member_webhook(self, channel_id: int, webhook_id: int) -> bool:
        """Whether `webhook_id` is one of the webhooks our members post through in `channel_id`; never
        creates one."""
        if any(key[0] == channel_id and hook.id == webhook_id for key, hook in self._webhooks.items()):
            return True
        channel = self.bot.get_channel(channel_id)
        if not isinstance(channel, discord.TextChannel):
            return False
        try:  # after a restart, before any member has posted, or through a webhook not cached yet
            await self.budget.spend(("webhooks", channel_id), Priority.WORDS)
            hooks = await channel.webhooks()
        except (discord.HTTPException, *UNCERTAIN):
            return False
        return any(hook.id == webhook_id and self._slot_of(hook) is not None for hook in hooks)

    def _slot_of(self, hook: discord.Webhook) -> int | None:
        """The slot of one of our members' webhooks (by its name), or None for anyone else's."""
        if not (hook.token and hook.user and self.bot.user and hook.user.id == self.bot.user.id):
            return None
        return next((slot for slot in range(MAX_SLOTS) if hook.name == webhook_name(slot)), None)

    def is_own_webhook(self, webhook_id: int | None) -> bool:
        return webhook_id is not None and any(w.id == webhook_id for w in self._webhooks.values())

    async def _thread(self, council: Council) -> discord.Thread:
        if council.thread_id is None:
            raise PlaceGone(f"council {council.id} has no thread")
        try:
            channel = self.bot.get_channel(council.thread_id) or await self.bot.fetch_channel(council.thread_id)
        except discord.NotFound as error:
            raise PlaceGone(f"council {council.id}'s thread is gone") from error
        except discord.Forbidden as error:
            parent = self.bot.get_channel(council.channel_id)
            missing = missing_permissions(parent, THREAD_NEEDS) if isinstance(parent, discord.TextChannel) else []
            raise PermissionMissing(missing or ["View Channel"], describe(error)) from error
        except (discord.HTTPException, *UNCERTAIN) as error:
            raise PlaceUnavailable(f"council {council.id}'s thread could not be read: {error}") from error
        if not isinstance(channel, discord.Thread):
            raise PlaceGone(f"council {council.id}'s thread {council.thread_id} is not a thread")
        return channel

    def room_to_edit(self, council: Council) -> bool:
        """Whether an optional edit of the council's messages (a streamed reply's words so far) may go out now."""
        webhook = self._webhooks.get((council.channel_id, self._slot(council)))
        return webhook is None or self.budget.available(("webhook", webhook.id), Priority.PROGRESS)

    def _slot(self, council: Council) -> int:
        return ((council.id or 1) - 1) % self.webhooks_per_channel

    def _forget_webhook(self, council: Council) -> None:
        self._webhooks.pop((council.channel_id, self._slot(council)), None)

    async def webhook_for(self, council: Council) -> discord.Webhook:
        """The webhook the council's members post through: its slot's, found by name or created."""
        key = (council.channel_id, self._slot(council))
        cached = self._webhooks.get(key)
        if cached is not None:
            return cached
        async with self._webhook_locks.setdefault(key, asyncio.Lock()):
            cached = self._webhooks.get(key)
            if cached is not None:
                return cached
            channel = self.bot.get_channel(council.channel_id) or await self.bot.fetch_channel(council.channel_id)
            if not isinstance(channel, discord.TextChannel):
                raise PlaceGone(f"channel {council.channel_id} cannot hold webhooks")
            try:
                await self.budget.spend(("webhooks", channel.id), Priority.WORDS, owner=council.id)
                ours = {self._slot_of(hook): hook for hook in await channel.webhooks()}
                webhook = ours.get(key[1])
                if webhook is None:
                    webhook = await self._create_webhook(channel, key[1], ours)
            except discord.HTTPException as error:
                raise translate(error, channel, WEBHOOK_NEEDS, f"channel {channel.id}'s webhooks") from error
            except UNCERTAIN as error:
                raise translate(error, channel, WEBHOOK_NEEDS, f"channel {channel.id}'s webhooks") from error
            self._webhooks[key] = webhook
            return webhook

    async def _create_webhook(
        self, channel: discord.TextChannel, slot: int, ours: dict[int | None, discord.Webhook]
    ) -> discord.Webhook:
        try:
            await self.budget.spend(("webhooks", channel.id), Priority.WORDS)
            return await channel.create_webhook(
                name=webhook_name(slot), reason="AI Council members post through this webhook"
            )
        except discord.HTTPException as error:
            if error.code != MAX_WEBHOOKS:
                raise
            # The channel has Discord's maximum of webhooks: share one of ours if there is one.
            shared = next((hook for key, hook in ours.items() if key is not None), None)
            if shared is None:
                raise PermissionMissing(
                    ["room for one more webhook (the channel has Discord's maximum of 15)"], describe(error)
                ) from error
            return shared


@dataclass
class _Outage:
    why: str
    since: float
    over: asyncio.Event = field(default_factory=asyncio.Event)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"
