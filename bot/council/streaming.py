"""Member replies shown while they are written: nothing lost, nothing left half-written.

Where: round-robin turns, when the engine is built with `stream_replies` (the Discord cog is) and, with
moderation, only under a server policy of `notify` without a judge member. Under `hold`, or with a judge,
a reply must be checked in full before any of it appears; parallel rounds post in seat order. Those keep
the whole-reply path.

How a streamed line is stored (one `council_message` row, under the turn's usual key):

1. `streaming`: stored when the first words arrive, before anything is posted. `content` holds the
   words shown so far, saved again before the publisher shows more (at most about once a second), and
   `discord_message_ids` the messages holding them, saved as soon as a message exists. A crash leaves in
   the database at least what the thread shows. No prompt includes the line yet.
2. `visible` with message ids and no `posted_at`: the final words are stored (screened; or the words
   that arrived plus a "✂️ cut off" note), not yet confirmed in Discord.
3. `visible` with `posted_at`: the thread shows exactly `content` (`record_posted`).

A process that stops between 1 and 3 leaves a line that the next start finishes before anything else:
still streaming, it is finished as cut ("the bot restarted"); final but unconfirmed, it is shown in full.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import aclosing

from bot.council.calls import MemberCalls
from bot.council.claims import PostClaims
from bot.council.lifecycle import CouncilLifecycle
from bot.council.moderation import CouncilModeration
from bot.council.patience import Patience, is_transient
from bot.council.posting import LinePosting
from bot.council.publisher import (
    CouncilPublisher,
    MemberStream,
    PlaceGone,
    PostRefused,
    StreamTrace,
    cut_at_limit,
    cut_text,
)
from bot.council.seats import Seat, SeatTable
from bot.council.transcript_view import TranscriptViews
from bot.providers.base import ChatRequest, Completion, ProviderError
from storage import repository as repo
from storage.database import Database
from storage.models import Council, CouncilMessage

log = logging.getLogger(__name__)

RESTARTED = "the bot restarted before the reply was finished"
CONCLUDED = "the council was concluded"
STOPPED = "the council stopped before the reply was finished"
THREAD_GONE = "the thread was deleted or closed"


class CutShort(Exception):
    """A streamed reply stopped after some of it was shown; it is stored and shown as cut, and the turn fails
    with `error` (its failure notice follows)."""

    def __init__(self, error: ProviderError) -> None:
        super().__init__(str(error))
        self.error = error


class StreamedTurns:
    """Streamed turns, and the finishing of those a stopped process left behind."""

    def __init__(
        self,
        db: Database,
        calls: MemberCalls,
        publisher: CouncilPublisher,
        claims: PostClaims,
        transcripts: TranscriptViews,
        patience: Patience,
        seats: SeatTable,
        posting: LinePosting,
        moderation: CouncilModeration | None,
        lifecycle: CouncilLifecycle,
        *,
        enabled: bool,
    ) -> None:
        self.db = db
        self.calls = calls
        self.publisher = publisher
        self.claims = claims
        self.transcripts = transcripts
        self.patience = patience
        self.seats = seats
        self.posting = posting
        self.moderation = moderation
        self.lifecycle = lifecycle
        self.enabled = enabled  # streaming at all (the Discord cog's engine: where the policy allows)
        self._completing: set[int] = set()  # lines whose final words this process is showing right now

    async def allowed(self, council: Council) -> bool:
        """Whether this council's next round-robin turn may be shown as it is written."""
        if not self.enabled:
            return False
        moderation = self.moderation
        if moderation is None:
            return True
        policy = await moderation.gate.policy(council.guild_id)
        return policy.mode == "notify" and not policy.judge_member

    async def turn(
        self, council: Council, seat: Seat, round_number: int, request: ChatRequest, started: float, *, turn_key: str
    ) -> CouncilMessage:
        """Ask one member for its turn and show the reply as it arrives; returns the line, already shown.
        A provider failure before any words were shown raises the ProviderError; after, CutShort."""
        stream = await self.publisher.open_stream(council, seat)
        text = ""
        line: CouncilMessage | None = None
        completion: Completion | None = None
        try:
            client = self.calls.client(seat.spec)
            async with aclosing(client.stream(request, timeout=self.calls.timeout)) as items:
                async for item in items:
                    if isinstance(item, Completion):
                        completion = item
                        continue
                    text += item.text
                    if not stream.wants(text):
                        continue
                    # Stored before it is shown (once per edit at most), so the database never holds
                    # less than the thread shows; a new message's id is stored right after it exists.
                    try:
                        if line is None:
                            line, created = await self._store_first_words(council, seat, round_number, turn_key, text)
                            if not created:
                                # Another process running this council stored the turn first: it shows it.
                                log.info("Council %s: %s's turn is shown by another process", council.id, seat.name)
                                return line
                        else:
                            await repo.save_stream_progress(self.db, line.id, text, line.discord_ids)
                    except Exception as error:
                        if not is_transient(error):
                            raise
                        # The database is away: nothing more is shown until it is stored. The words keep
                        # arriving, and the whole reply is stored (patiently) and shown once it is complete.
                        self.patience.stats.count(error)
                        continue
                    line.content = text
                    shown = await stream.update(text)
                    if shown is not None and shown != line.discord_ids:
                        await self.patience.call(
                            lambda line_id=line.id, words=text, ids=shown: repo.save_stream_progress(
                                self.db, line_id, words, ids
                            ),
                            council_id=council.id,
                        )
                        line.discord_message_ids = ",".join(map(str, shown))
            if completion is None:
                raise ProviderError("empty", f"{client.name}: the stream ended without a reply")
            if line is None:  # the database was away while every word arrived: stored now, shown whole below
                line, created = await self.patience.call(
                    lambda: self._store_first_words(council, seat, round_number, turn_key, text),
                    council_id=council.id,
                )
                if not created:
                    return line
        except ProviderError as error:
            if line is None:
                raise
            await asyncio.shield(self._cut(council, line, stream, text, str(error)))
            raise CutShort(error) from error
        except asyncio.CancelledError:
            # Concluded mid-reply: say so where the words stop. A shutdown leaves it to the next start.
            if line is not None and self.lifecycle.is_ending(council.id):
                await asyncio.shield(self._cut(council, line, stream, text, CONCLUDED))
            raise
        except PostRefused as refused:
            if line is None:
                raise
            # Discord will not show this reply as it grows: it is stored as far as it came, not shown.
            await asyncio.shield(repo.complete_stream(self.db, line, content=cut_text(text, "Discord refused it")))
            await asyncio.shield(self.posting.refused(council, await self.seats.of(council.id), line, refused))
            return line
        except PlaceGone:
            if line is not None:  # nothing more can be shown: the database keeps what was, as cut
                await repo.complete_stream(self.db, line, content=cut_text(text, THREAD_GONE))
                await self._confirm(council, line, line.discord_ids)
            raise
        finally:
            await stream.close()  # the typing indicator; finish() still works
        log.info(
            "turn council=%s member=%s round=%s duration_ms=%.0f tokens_in=%s tokens_out=%s streamed=1",
            council.id,
            seat.name,
            round_number,
            (time.perf_counter() - started) * 1000,
            completion.input_tokens,
            completion.output_tokens,
        )
        # Shielded like a post: once the final words are being stored and shown, they are finished.
        latency_ms = round((time.perf_counter() - started) * 1000)
        return await asyncio.shield(self._complete(council, seat, line, stream, completion, latency_ms))

    async def _store_first_words(
        self, council: Council, seat: Seat, round_number: int, turn_key: str, text: str
    ) -> tuple[CouncilMessage, bool]:
        return await repo.add_message(
            self.db,
            council_id=council.id,
            round_number=round_number,
            author_kind="ai",
            author_name=seat.name,
            turn_key=turn_key,
            content=text,
            visibility="streaming",
            claimed_by=self.claims.claimant,
        )

    async def _show_final(
        self, council: Council, line: CouncilMessage, stream: MemberStream, text: str, *, cut_note: str | None = None
    ) -> None:
        """Make the thread show the stored final words and confirm it; Discord refusing them ends the line
        as refused (kept, not shown, the thread told why)."""
        try:
            ids = await stream.finish(text, cut_note=cut_note)
        except PostRefused as refused:
            await self.posting.refused(council, await self.seats.of(council.id), line, refused)
            return
        await self._confirm(council, line, ids)

    async def _confirm(self, council: Council, line: CouncilMessage, ids: list[int]) -> None:
        """The thread shows the line exactly as stored: noted, whatever outage it takes to note it."""
        await self.patience.call(lambda: repo.record_posted(self.db, line.id, ids), council_id=council.id)
        line.note_posted(ids)

    async def _complete(
        self,
        council: Council,
        seat: Seat,
        line: CouncilMessage,
        stream: MemberStream,
        completion: Completion,
        latency_ms: int,
    ) -> CouncilMessage:
        """Screen the whole reply, store it, and make the thread show exactly that (a self-flag line goes)."""
        assert line.id is not None
        self._completing.add(line.id)
        try:
            return await self._screen_and_show(council, seat, line, stream, completion, latency_ms)
        finally:
            self._completing.discard(line.id)

    async def _screen_and_show(
        self,
        council: Council,
        seat: Seat,
        line: CouncilMessage,
        stream: MemberStream,
        completion: Completion,
        latency_ms: int,
    ) -> CouncilMessage:
        moderation = self.moderation
        patience = self.patience
        screened = (
            await patience.call(
                lambda: moderation.screen_ai(council, seat.name, completion.text), council_id=council.id
            )
            if moderation
            else None
        )
        final = screened.text if screened else completion.text
        if completion.truncated:
            final = cut_at_limit(final, seat.name, seat.spec.max_output_tokens)
        tokens = {
            "tokens_in": completion.input_tokens,
            "tokens_out": completion.output_tokens,
            "latency_ms": latency_ms,
            "reasoning": completion.reasoning,
        }
        if screened is not None and screened.hold:
            # The server switched to `hold` while the reply streamed: take it down until a moderator decides.
            await self.publisher.delete_messages(council, line.discord_ids)
            await patience.call(
                lambda: repo.complete_stream(
                    self.db, line, content=final, visibility="held", discord_message_ids=[], **tokens
                ),
                council_id=council.id,
            )
        else:
            stored = await patience.call(
                lambda: repo.complete_stream(self.db, line, content=final, **tokens), council_id=council.id
            )
            if not stored:
                return line  # finished already, as cut (the council was concluded meanwhile)
            await self._show_final(council, line, stream, final)
        if screened is not None and moderation is not None:
            await moderation.raise_concerns(council, line, screened, author_name=seat.name, content=final)
        return line

    async def _cut(self, council: Council, line: CouncilMessage, stream: MemberStream, text: str, reason: str) -> None:
        """Finish a reply that stopped early: the words that arrived, then why it stopped."""
        stored = await self.patience.call(
            lambda: repo.complete_stream(self.db, line, content=cut_text(text, reason)), council_id=council.id
        )
        if stored:
            await self._show_final(council, line, stream, text, cut_note=reason)

    async def recover(self, council: Council, reason: str = RESTARTED) -> None:
        """Finish the streamed lines a stopped runner left: a half-shown one as cut (for `reason`), a final
        one in full."""
        unfinished = await repo.unfinished_streams(self.db, council.id)
        if not unfinished:
            return
        self.transcripts.forget(council.id)  # these lines' words change below
        lines = await repo.transcript(self.db, council.id)
        seats = {seat.name: seat for seat in await self.seats.of(council.id)}
        for line in unfinished:
            if line.id in self._completing:
                continue  # its runner, cancelled meanwhile, is still showing its final words
            if not (await self.claims.claim(line)).won:
                continue  # another live process is streaming it, or finishing it
            # Messages the runner posted before this line; the member's later ones belong to it.
            earlier = [
                i for other in lines if other.id < line.id and other.author_kind != "human" for i in other.discord_ids
            ]
            trace = StreamTrace(tuple(line.discord_ids), max(earlier, default=None))
            text, note = line.content, None
            if line.visibility == "streaming":
                note = reason
                await repo.complete_stream(self.db, line, content=cut_text(text, note))
            ids = list(trace.message_ids)
            seat = seats.get(line.author_name)
            if seat is not None:
                try:
                    stream = await self.publisher.open_stream(council, seat, resume=trace)
                    try:
                        ids = await stream.finish(text, cut_note=note)
                    finally:
                        await stream.close()
                except PlaceGone:
                    log.info("Council %s: line %s could not be finished, its thread is gone", council.id, line.id)
                except PostRefused as refused:
                    await self.posting.refused(council, list(seats.values()), line, refused)
                    continue
            log.info("Council %s: finished streamed line %s left unfinished (cut=%s)", council.id, line.id, bool(note))
            await self._confirm(council, line, ids)
