"""A member reply shown in its thread while it is written: one webhook message, edited as words arrive.

The bot shows itself typing in the thread (the publisher's indicator for the council) until the member's first
words, which create the message and stop it.
Later words edit it at most once a second (EDIT_INTERVAL), and never when the text did not change.
When the text no longer fits in one message, the message is finished at a safe boundary
(`bot.text.StreamLayout`, the same boundaries as `split_message`) and the reply continues in a new one;
boundaries chosen once stay put. `finish` makes every message show its final words exactly, with one
last edit where needed. discord.py's own limiter handles 429s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import discord

from bot.council.publisher import PlaceUnavailable, StreamTrace, cut_text
from bot.council.seats import Seat
from bot.text import StreamLayout
from cogs.council._budget import DiscordBudget, Priority
from cogs.council._errors import THREAD_NEEDS, UNCERTAIN, translate
from storage.models import Council


class MemberPoster(Protocol):
    """What a stream needs of the publisher that opened it (cogs/council/_publisher.py)."""

    async def send_as_member(self, council: Council, thread: discord.Thread, seat: Seat, content: str) -> int:
        """Post `content` under the member's name; the message id."""
        ...

    async def webhook_for(self, council: Council) -> discord.Webhook:
        """The webhook the council's members post through (it edits and deletes their messages)."""
        ...

    def room_to_edit(self, council: Council) -> bool:
        """Whether an optional edit (the words so far) may go out now, within Discord's rate budget."""
        ...

    def stop_typing(self, council: Council) -> None:
        """The member's words show: the council's typing indicator stops."""
        ...


log = logging.getLogger(__name__)

EDIT_INTERVAL = 1.0  # seconds between two edits of one message
HISTORY_LOOKBACK = 50
NO_MENTIONS = discord.AllowedMentions.none()


@dataclass
class _Shown:
    id: int
    content: str | None  # None: not known (posted by an earlier process)
    written: float  # when it was last sent or edited


class DiscordMemberStream:
    """The MemberStream of the Discord publisher."""

    def __init__(
        self,
        publisher: MemberPoster,
        council: Council,
        seat: Seat,
        thread: discord.Thread,
        *,
        interval: float = EDIT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        budget: DiscordBudget | None = None,
    ) -> None:
        self.publisher = publisher
        self.budget = budget or DiscordBudget()
        self.council = council
        self.seat = seat
        self.thread = thread
        self.interval = interval
        self.clock = clock
        self.messages: list[_Shown] = []
        self.layout = StreamLayout()  # the reply as last shown, laid out in messages

    @property
    def ids(self) -> list[int]:
        return [shown.id for shown in self.messages]

    async def resume(self, trace: StreamTrace, webhook_id: int) -> None:
        """Take over the messages an earlier process posted for this reply: the recorded ones, then the
        member's later messages that nobody recorded."""
        self.messages = [_Shown(message_id, None, 0.0) for message_id in trace.message_ids]
        after = max(trace.message_ids, default=trace.after_id)
        try:
            await self.budget.spend(("history", self.thread.id), Priority.WORDS, owner=self.council.id)
            history = [
                message
                async for message in self.thread.history(
                    limit=HISTORY_LOOKBACK, after=discord.Object(after) if after else None, oldest_first=False
                )
            ]
        except discord.HTTPException:
            return
        for message in reversed(history):
            by_member = (message.webhook_id, message.author.name) == (webhook_id, self.seat.name)
            if by_member and message.id not in trace.message_ids:
                self.messages.append(_Shown(message.id, message.content, 0.0))

    def wants(self, text: str) -> bool:
        if not text.strip():
            return False
        if not self.messages:
            return True  # the first words are shown at once
        if self.clock() - self.messages[-1].written < self.interval:
            return False  # shown with a later update, or by finish()
        if self.layout.grow(text)[0] == [shown.content for shown in self.messages]:
            return False
        if not self.publisher.room_to_edit(self.council):
            # Discord's budget is tight: this edit is skipped, and the next one carries the newer words.
            self.budget.skip()
            return False
        return True

    async def update(self, text: str) -> list[int] | None:
        if not self.wants(text):
            return None
        contents, layout = self.layout.grow(text)
        before = self.ids
        try:
            changed = await self._show(contents)
        except (*UNCERTAIN, PlaceUnavailable) as error:
            log.warning("Council %s: a streaming edit failed (%s); the next one catches up", self.council.id, error)
            return self.ids if self.ids != before else None  # a message made before the failure is noted
        self.layout = layout
        return self.ids if changed else None

    async def finish(self, text: str, *, cut_note: str | None = None) -> list[int]:
        final = cut_text(text, cut_note) if cut_note else text
        contents = self.layout.final(final)
        await self.close()
        for attempt in (1, 2):
            try:
                await self._show(contents or ["…"], prune=True, priority=Priority.WORDS)
                return self.ids
            except (*UNCERTAIN, PlaceUnavailable) as error:
                if attempt == 2:
                    raise translate(error, self.thread, THREAD_NEEDS, f"council {self.council.id}'s reply") from error
                await asyncio.sleep(1)
        raise AssertionError("unreachable")

    async def close(self) -> None:
        self.publisher.stop_typing(self.council)

    async def _show(self, contents: list[str], *, prune: bool = False, priority: Priority = Priority.PROGRESS) -> bool:
        """Edit, post (and with `prune` delete) messages until they show `contents`; whether anything changed."""
        changed = False
        for index, content in enumerate(contents):
            if index >= len(self.messages):
                await self.close()  # the member's words stop the typing indicator
                message_id = await self.publisher.send_as_member(self.council, self.thread, self.seat, content)
                self.messages.append(_Shown(message_id, content, self.clock()))
                changed = True
            elif self.messages[index].content != content:
                await self._edit(index, content, priority)
                changed = True
        if prune and len(self.messages) > len(contents):
            webhook = await self.publisher.webhook_for(self.council)
            for extra in self.messages[len(contents) :]:
                await self.budget.spend(("webhook", webhook.id), Priority.WORDS, owner=self.council.id)
                with contextlib.suppress(discord.NotFound):
                    await webhook.delete_message(extra.id, thread=self.thread)
            del self.messages[len(contents) :]
            changed = True
        return changed

    async def _edit(self, index: int, content: str, priority: Priority) -> None:
        shown = self.messages[index]
        webhook = await self.publisher.webhook_for(self.council)
        try:
            await self.budget.spend(("webhook", webhook.id), priority, owner=self.council.id)
            await webhook.edit_message(shown.id, content=content, thread=self.thread, allowed_mentions=NO_MENTIONS)
        except discord.NotFound:
            # Someone deleted the message (or the webhook that posted it): show the words anew.
            log.info("Council %s: streamed message %s is gone; posting its words again", self.council.id, shown.id)
            message_id = await self.publisher.send_as_member(self.council, self.thread, self.seat, content)
            self.messages[index] = _Shown(message_id, content, self.clock())
            return
        except UNCERTAIN:
            raise  # update() skips it, finish() tries once more
        except discord.HTTPException as error:
            raise translate(error, self.thread, THREAD_NEEDS, f"council {self.council.id}'s streamed reply") from error
        shown.content, shown.written = content, self.clock()
