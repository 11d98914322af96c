"""The memory of permanent councils (templates): closing minutes of each session, recalled in the next.

When a session of a template ends (`concluded`, after at least one member turn), its chair is asked for the
minutes: what was agreed, what stays open. They are stored as the transcript line `minutes` before they are
shown, so a restart never asks twice and never shows them twice; a provider failure stores a notice under
the same key instead. Members of the template's later sessions receive the newest minutes in their prompts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bot.council.calls import MemberCalls
from bot.council.language import of_transcript
from bot.council.moderation import CouncilModeration
from bot.council.posting import LinePosting
from bot.council.prompts import build_request
from bot.council.seats import SeatTable
from bot.council.transcript_view import prompt_lines
from bot.providers.base import ProviderError
from storage import repository as repo
from storage import template_repository as templates_repo
from storage.database import Database
from storage.models import Council, CouncilMessage
from storage.template_repository import MINUTES_TURN_KEY

log = logging.getLogger(__name__)

MINUTES_HEADING = "📜 **Minutes of this session**"
MINUTES_WORDS = 150
RECALLED_SESSIONS = 3  # the newest minutes offered to a session's members (fewer if the budget is tight)
RECOVERY_WINDOW = timedelta(days=7)  # sessions that ended longer ago than this get no minutes at a restart
MINUTES_INSTRUCTION = (
    "The council has ended. As its chair, write the minutes of this session for the council's next meeting: "
    f"what was agreed, and what stays open. At most {MINUTES_WORDS} words, in Discord markdown, with no "
    "preamble and no heading."
)


def day(moment: datetime) -> str:
    """The UTC date of a stored time (SQLite gives them back without a zone; they are UTC)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return f"{aware.astimezone(UTC):%Y-%m-%d}"


def minutes_text(line: CouncilMessage) -> str:
    """The minutes as written, without the heading they are shown under."""
    return line.content.removeprefix(MINUTES_HEADING).strip()


def clip_words(text: str, limit: int) -> str:
    words = text.split(" ")
    return text if len(words) <= limit else " ".join(words[:limit]).rstrip() + " …"


class CouncilMemory:
    def __init__(
        self,
        db: Database,
        calls: MemberCalls,
        seats: SeatTable,
        posting: LinePosting,
        moderation: CouncilModeration | None,
    ) -> None:
        self.db = db
        self.calls = calls
        self.seats = seats
        self.posting = posting
        self.moderation = moderation
        self._recalled: dict[int, tuple[str, ...]] = {}
        self._closing: set[int] = set()  # councils whose minutes this process is writing or showing now

    async def recollections(self, council: Council) -> tuple[str, ...]:
        """What the council's members receive of its template's earlier sessions, newest first (labelled
        with their dates); read once per session, since earlier sessions no longer change."""
        if council.template_id is None:
            return ()
        cached = self._recalled.get(council.id)
        if cached is None:
            earlier = await templates_repo.previous_minutes(self.db, council.template_id, council.id, RECALLED_SESSIONS)
            cached = tuple(
                f"Session of {day(item.council.ended_at or item.council.created_at)} "
                f"(council #{item.council.id}, topic: {item.council.topic}):\n{minutes_text(item.minutes)}"
                for item in earlier
            )
            self._recalled[council.id] = cached
        return cached

    def forget(self, council_id: int) -> None:
        self._recalled.pop(council_id, None)

    async def close_session(self, council: Council, *, recovering: bool = False) -> None:
        """Ask for a concluded session's minutes once, store them, and show them once."""
        if council.template_id is None or council.state != "concluded" or council.id in self._closing:
            return
        self._closing.add(council.id)
        try:
            line = await repo.get_message_by_turn(self.db, council.id, MINUTES_TURN_KEY)
            if line is None:
                line = await self._write(council)
            if line is not None:
                await self.posting.show(council, line, recovering=recovering)
        finally:
            self._closing.discard(council.id)

    async def recover(self, owns: Callable[[int], bool]) -> None:
        """At start-up: finish the minutes of sessions that ended while the process was stopping."""
        since = datetime.now(UTC) - RECOVERY_WINDOW
        for council in await templates_repo.sessions_awaiting_minutes(self.db, since):
            if owns(council.guild_id):
                await self.close_session(council, recovering=True)

    async def _write(self, council: Council) -> CouncilMessage | None:
        lines = await repo.transcript(self.db, council.id)
        if not any(line.author_kind == "ai" and line.turn_key.startswith("ai:") for line in lines):
            return None  # nobody spoke: nothing to sum up
        seats = await self.seats.of(council.id)
        chair = self.seats.chair(council, seats)  # the chair writes the minutes
        if chair is None:
            return None
        request = build_request(
            chair,
            seats,
            topic=council.topic,
            lines=await prompt_lines(self.db, council.id or 0, lines),
            round_number=council.current_round,
            rounds=council.rounds,
            budget_tokens=self.calls.context_budget,
            instruction=MINUTES_INSTRUCTION,
            language=of_transcript(council.language, council.topic, lines),
        )
        started = time.perf_counter()
        try:
            completion = await self.calls.client(chair.spec).complete(request, timeout=self.calls.timeout)
            if not completion.text.strip():
                raise ProviderError("empty", "the reply was empty")
        except ProviderError as error:
            log.warning("minutes failed council=%s member=%s error=%s", council.id, chair.name, error.kind)
            line, _ = await repo.add_message(
                self.db,
                council_id=council.id,
                round_number=council.current_round,
                author_kind="system",
                author_name=chair.name,
                turn_key=MINUTES_TURN_KEY,
                content=f"📜 No minutes for this session: {chair.name} could not write them ({error}). "
                "The council's next session starts without them.",
            )
            return line
        log.info(
            "minutes council=%s member=%s duration_ms=%.0f tokens_in=%s tokens_out=%s",
            council.id,
            chair.name,
            (time.perf_counter() - started) * 1000,
            completion.input_tokens,
            completion.output_tokens,
        )
        moderation = self.moderation
        screened = await moderation.screen_ai(council, chair.name, completion.text) if moderation else None
        text = clip_words((screened.text if screened else completion.text).strip(), MINUTES_WORDS + 50)
        line, created = await repo.add_message(
            self.db,
            council_id=council.id,
            round_number=council.current_round,
            author_kind="ai",
            author_name=chair.name,
            turn_key=MINUTES_TURN_KEY,
            content=f"{MINUTES_HEADING}\n{text}",
            tokens_in=completion.input_tokens,
            tokens_out=completion.output_tokens,
            visibility="held" if screened and screened.hold else "visible",
        )
        if created and screened is not None and moderation is not None:
            await moderation.raise_concerns(council, line, screened, author_name=chair.name, content=line.content)
        return line
