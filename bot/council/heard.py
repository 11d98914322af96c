"""Humans' words in council threads, heard even while the database is away.

A message that arrives while the database does not answer is kept in memory (up to UNHEARD_LIMIT) and
stored, in the order the messages came, as soon as it answers again. Past the limit the oldest kept message
makes room, and its thread is read again afterwards (`CouncilEngine.catch_up`), so nothing written is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING

from bot.council.patience import is_transient
from bot.council.publisher import HeardMessage

if TYPE_CHECKING:
    from bot.council.engine import CouncilEngine

log = logging.getLogger(__name__)

UNHEARD_LIMIT = 500


class UnheardMessages:
    def __init__(self, engine: CouncilEngine, *, limit: int = UNHEARD_LIMIT) -> None:
        self.engine = engine
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
            self.engine.patience.stats.count(error)
            log.warning("A message in thread %s is kept until the database answers", thread_id)
            self._keep(thread_id, message)

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)

    async def _store(self, thread_id: int, message: HeardMessage) -> None:
        await self.engine.record_human(
            thread_id=thread_id,
            message_id=message.message_id,
            author_id=message.author_id,
            author_name=message.author_name,
            content=message.content,
            replied_to=message.replied_to,
        )

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
                self.engine.patience.stats.count(error)
                await asyncio.sleep(self.engine.patience.backoff.delay(tries))

    async def _read_again(self) -> None:
        reread, self._reread = self._reread, {}
        for thread_id, first_dropped in reread.items():
            try:
                council = await self.engine.council_of_thread(thread_id)
                if council is not None:
                    await self.engine.catch_up(council, after=first_dropped - 1)
            except Exception:
                log.exception("Thread %s could not be read again for the messages that were not kept", thread_id)
