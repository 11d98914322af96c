"""Showing stored lines: each exactly once, whichever process runs the council, and never lost.

A line is stored before it is posted (by whoever wrote it). To post it, this process claims it in the
database (bot/council/claims.py), posts it through the publisher noting each Discord message as it goes out,
and records that it was posted, however long an outage makes that note wait. A line Discord refuses for
good is kept unshown with a notice; notices about a line (moderators notified, member benched) follow it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from bot.council.claims import PostClaims
from bot.council.lifecycle import CouncilLifecycle
from bot.council.patience import Patience
from bot.council.publisher import CouncilPublisher, PermissionMissing, PlaceGone, PostRefused, Table
from bot.council.seats import Seat, SeatTable
from bot.council.transcript_view import TranscriptViews
from storage import repository as repo
from storage.database import Database
from storage.models import Council, CouncilMessage

log = logging.getLogger(__name__)


class LinePosting:
    def __init__(
        self,
        db: Database,
        publisher: CouncilPublisher,
        claims: PostClaims,
        patience: Patience,
        seats: SeatTable,
        transcripts: TranscriptViews,
        lifecycle: CouncilLifecycle,
    ) -> None:
        self.db = db
        self.publisher = publisher
        self.claims = claims
        self.patience = patience
        self.seats = seats
        self.transcripts = transcripts
        self.lifecycle = lifecycle
        self._follow_ups: dict[tuple[int, str], str] = {}

    async def show(self, council: Council, message: CouncilMessage, *, recovering: bool = False) -> None:
        """Post a stored line now, outside a turn (approved messages, notices, minutes): a thread that is gone
        ends the council; a lost permission pauses it, and its runner posts the line once it goes on."""
        try:
            await self.post(council, await self.seats.of(council.id), message, recovering=recovering)
        except PlaceGone:
            await self.lifecycle.end_without_thread(council.id)
        except PermissionMissing as missing:
            await self.lifecycle.pause_for(council.id, missing)

    async def post(
        self, council: Council, seats: Sequence[Seat], message: CouncilMessage, *, recovering: bool = False
    ) -> None:
        # Shielded: once a post has started, cancelling the council must not leave it unrecorded.
        await asyncio.shield(self._post_once(council, seats, message, recovering=recovering))

    async def post_unposted(self, council: Council, seats: Sequence[Seat], *, recovering: bool = False) -> None:
        """Show every stored line not yet shown; `recovering` after a restart, when some may be."""
        for line in await repo.transcript(self.db, council.id):
            if line.author_kind != "human" and line.posted_at is None and line.visibility == "visible":
                await self.post(council, seats, line, recovering=recovering)

    def follow_with(self, council_id: int, turn_key: str, notice_key: str) -> None:
        """Post the notice stored under `notice_key` right after the line stored under `turn_key`."""
        self._follow_ups[(council_id, turn_key)] = notice_key

    async def _post_once(
        self, council: Council, seats: Sequence[Seat], message: CouncilMessage, *, recovering: bool = False
    ) -> None:
        if message.visibility != "visible":
            return
        # A streamed reply is shown already; its notices still follow it. A line claimed by another
        # process (running this council too) is that process's to post: this one skips it.
        if message.posted_at is None and (claim := await self.claims.claim(message)).won:
            # Taken over from a stopped claimant, which may have posted it before recording the post.
            recovering = recovering or claim.took_over
            try:
                ids = await self._publish(council, seats, message, recovering=recovering)
            except PostRefused as refused:
                await self.refused(council, seats, message, refused)
                return
            # Once posted, the note that it was is never dropped for an outage: that would post it twice.
            await self.patience.call(lambda: repo.record_posted(self.db, message.id, ids), council_id=council.id)
            message.note_posted(ids)
        # Notices about this line follow it directly. After a restart they are posted in transcript order
        # anyway, so knowing them in memory is enough.
        notice_key = self._follow_ups.pop((council.id, message.turn_key), None)
        if notice_key is not None:
            notice = await repo.get_message_by_turn(self.db, council.id, notice_key)
            if notice is not None:
                await self._post_once(council, seats, notice)

    async def _publish(
        self, council: Council, seats: Sequence[Seat], message: CouncilMessage, *, recovering: bool
    ) -> list[int]:
        """Post a line through the publisher, noting each message's id as it goes out."""
        assert message.id is not None
        line_id = message.id

        async def progress(ids: list[int]) -> None:
            await self.patience.call(lambda: repo.save_post_progress(self.db, line_id, ids), council_id=council.id)
            message.discord_message_ids = ",".join(map(str, ids))

        seat = next((s for s in seats if s.name == message.author_name), None)
        if message.author_kind == "ai" and seat is not None:
            return await self.publisher.post_member_message(
                council, seat, message.content, recovering=recovering, shown=message.discord_ids, progress=progress
            )
        if message.author_kind == "table":
            return await self.publisher.post_table(council, Table.loads(message.content), recovering=recovering)
        return await self.publisher.post_notice(
            council, message.content, recovering=recovering, shown=message.discord_ids, progress=progress
        )

    async def refused(
        self, council: Council, seats: Sequence[Seat], message: CouncilMessage, refused: PostRefused
    ) -> None:
        """Discord refused a line for good: it is kept, marked as not shown, and the thread says why. The
        council goes on (a retry would be refused the same way)."""
        log.warning("Council %s: Discord refused line %s (%s)", council.id, message.id, refused.reason)
        assert message.id is not None
        if message.discord_ids:  # the parts that did go out: a line is shown whole or not at all
            await self.publisher.delete_messages(council, message.discord_ids)
        await repo.set_message_visibility(self.db, message.id, "refused")
        message.visibility = "refused"
        self.transcripts.forget(council.id)
        if message.turn_key.startswith("refused:"):
            return  # the notice about a refusal was refused too: nothing more to say there
        what = f"{message.author_name}'s reply" if message.author_kind == "ai" else "a notice"
        notice, _ = await repo.add_message(
            self.db,
            council_id=council.id,
            round_number=message.round,
            author_kind="system",
            author_name=message.author_name,
            turn_key=f"refused:{message.turn_key}"[:120],
            content=f"⚠️ Discord refused to show {what} ({refused.reason}). It is kept in the council's "
            "transcript (`/council export`), and the council goes on.",
            claimed_by=self.claims.claimant,
        )
        await self._post_once(council, seats, notice)
