"""Humans' words in council threads: stored as they come (screened like any line), taken in from the thread's
history when this process was not listening, and kept through a database outage.

A message that arrives while the database does not answer is kept in memory (up to UNHEARD_LIMIT) and stored,
in the order the messages came, as soon as it answers again; a council's runner stores them before its next
turn. Past the limit the oldest kept message makes room, and its thread is read again afterwards
(`HumanVoices.catch_up`), so nothing written is lost.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import Sequence

from bot.council.attachments import Prepared, prepare, rows
from bot.council.moderation import CouncilModeration
from bot.council.patience import Patience, is_transient
from bot.council.publisher import CouncilPublisher, HeardMessage
from bot.council.requests import PendingRequests
from bot.council.seats import Seat, SeatTable
from storage import repository as repo
from storage.database import Database
from storage.models import Council
from storage.repository import ACTIVE_STATES

log = logging.getLogger(__name__)

UNHEARD_LIMIT = 500


def addressee(seats: Sequence[Seat], replied_to: str | None, content: str) -> str | None:
    """The member a human's message is meant for: the one it replies to, else the first one it @-names."""
    active = [seat for seat in seats if seat.active]
    if replied_to is not None:
        seat = next((s for s in active if s.name == replied_to), None)
        if seat is not None:
            return seat.name
    named = [
        (match.start(), seat.name)
        for seat in active
        if (match := re.search(rf"(?<!\w)@{re.escape(seat.name)}(?!\w)", content, re.IGNORECASE))
    ]
    return min(named)[1] if named else None


class HumanVoices:
    def __init__(
        self,
        db: Database,
        publisher: CouncilPublisher,
        seats: SeatTable,
        moderation: CouncilModeration | None,
        requests: PendingRequests,
        patience: Patience,
    ) -> None:
        self.db = db
        self.publisher = publisher
        self.seats = seats
        self.moderation = moderation
        self.requests = requests
        self.unheard = UnheardMessages(self, patience)

    async def record(self, thread_id: int, message: HeardMessage) -> bool:
        """Store a human's words in a council thread; members whose turn starts later will see them.

        A member the human replied to (`replied_to`, the name on the message) or @-named answers them after
        the turn in progress. Whether the message was new.
        """
        council = await repo.get_council_by_thread(self.db, thread_id)
        if council is None or council.state not in ACTIVE_STATES:
            return False
        # Files: images kept as members are sent them, text files read into the words, the rest named.
        shared = await asyncio.to_thread(prepare, list(message.files)) if message.files else Prepared()
        content = "\n\n".join(part for part in (message.content.strip(), shared.text) if part)
        if not content and not shared.images:
            return False
        addressed_to = addressee(await self.seats.of(council.id), message.replied_to, message.content)
        screened = (
            await self.moderation.screen_human(council, message.author_name, content) if self.moderation else None
        )
        line, created = await repo.add_message(
            self.db,
            council_id=council.id,
            round_number=council.current_round,
            author_kind="human",
            author_name=message.author_name,
            author_id=message.author_id,
            turn_key=f"human:{message.message_id}",
            content=content,
            attachments=rows(shared, message.author_name),
            # Flagged human words stay out of the members' prompts until a moderator lets them in.
            visibility="held" if screened and screened.hold else "visible",
            addressed_to=addressed_to,
        )
        if created and addressed_to is not None:
            self.requests.expect(council.id)
        if created:
            await repo.record_posted(self.db, line.id, [message.message_id])
            if screened is not None and self.moderation is not None:
                await self.moderation.raise_concerns(
                    council, line, screened, author_name=message.author_name, content=content
                )
        return created

    async def catch_up(self, council: Council, after: int | None = None) -> int:
        """Take in what humans wrote in the council's thread while this process was not listening (it was
        stopped, or the database was away), in order, each once, through the same moderation as live
        messages; how many were new. `after`: the message to read after (default: the newest one the
        council's transcript knows)."""
        if council.thread_id is None or council.state not in ACTIVE_STATES:
            return 0
        if after is None:
            after = await repo.newest_discord_id(self.db, council.id) or council.thread_id
        heard = await self.publisher.missed_messages(council, after)
        known = await repo.recorded_human_messages(self.db, council.id, [message.message_id for message in heard])
        taken = 0
        for message in heard:
            if message.message_id not in known:
                taken += await self.record(council.thread_id, message)
        if taken:
            log.info("Council %s: took in %d message(s) humans wrote while it was not heard", council.id, taken)
        return taken


class UnheardMessages:
    """Messages the database could not take when they were written, kept in order until it answers."""

    def __init__(self, voices: HumanVoices, patience: Patience, *, limit: int = UNHEARD_LIMIT) -> None:
        self.voices = voices
        self.patience = patience
        self.limit = limit
        self._pending: deque[tuple[int, HeardMessage]] = deque()  # (thread id, message), oldest first
        self._reread: dict[int, int] = {}  # thread id -> read its history again after this message id
        self._flusher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def record(self, thread_id: int, message: HeardMessage) -> None:
        """Store a human's message now, or keep it until the database answers (behind any kept before it)."""
        if self._pending:
            self._keep(thread_id, message)
            return
        try:
            await self._store(thread_id, message)
        except Exception as error:
            if not is_transient(error):
                raise
            self.patience.stats.count(error)
            log.warning("A message in thread %s is kept until the database answers", thread_id)
            self._keep(thread_id, message)

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)

    async def _store(self, thread_id: int, message: HeardMessage) -> None:
        await self.voices.record(thread_id, message)

    def _keep(self, thread_id: int, message: HeardMessage) -> None:
        if len(self._pending) >= self.limit:
            dropped_thread, dropped = self._pending.popleft()
            # Read that thread again from just before it, once the database is back.
            self._reread[dropped_thread] = min(self._reread.get(dropped_thread, dropped.message_id), dropped.message_id)
        self._pending.append((thread_id, message))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="unheard-messages")

    async def drain(self) -> None:
        """Store every kept message, in order; raises the outage if the database is still away. A council's
        runner drains before its next turn, so the members read what was written during the outage."""
        async with self._lock:
            while self._pending:
                thread_id, message = self._pending[0]
                try:
                    await self._store(thread_id, message)
                except Exception as error:
                    if is_transient(error):
                        raise
                    log.exception("A kept message of thread %s could not be stored; it is left out", thread_id)
                self._pending.popleft()
        if self._reread:
            await self._read_again()

    async def _flush(self) -> None:
        tries = 0
        while self._pending or self._reread:
            try:
                await self.drain()
            except Exception as error:
                if not is_transient(error):
                    raise
                tries += 1
                self.patience.stats.count(error)
                await asyncio.sleep(self.patience.backoff.delay(tries))

    async def _read_again(self) -> None:
        reread, self._reread = self._reread, {}
        for thread_id, first_dropped in reread.items():
            try:
                council = await repo.get_council_by_thread(self.voices.db, thread_id)
                if council is not None:
                    await self.voices.catch_up(council, after=first_dropped - 1)
            except Exception:
                log.exception("Thread %s could not be read again for the messages that were not kept", thread_id)
