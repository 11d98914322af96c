"""One member's turn: its prompt, the call, the stored reply or failure notice; and the turns humans ask for.

Every reply is checked (bot/council/moderation.py) and stored before anyone sees it; a member failing
too many turns in a row is benched.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from bot.council.calls import MemberCalls
from bot.council.claims import PostClaims
from bot.council.language import Language, of_transcript
from bot.council.lifecycle import CouncilLifecycle
from bot.council.memory import CouncilMemory
from bot.council.moderation import CouncilModeration
from bot.council.patience import Patience
from bot.council.posting import LinePosting
from bot.council.prompts import TranscriptLine, addressed_instruction, build_request, digest
from bot.council.publisher import CouncilPublisher, cut_at_limit
from bot.council.requests import PendingRequests
from bot.council.seats import Seat, SeatTable
from bot.council.streaming import CutShort, StreamedTurns
from bot.council.tool_turns import ToolTurns
from bot.council.transcript_view import TranscriptViews, prompt_lines
from bot.providers.base import ChatRequest, Completion, ProviderError
from storage import deliberation_repository as deliberation_repo
from storage import repository as repo
from storage.database import Database
from storage.models import Council, CouncilMessage

log = logging.getLogger(__name__)

BENCH_AFTER_FAILURES = 3  # a member failing this many turns in a row sits out the rest of the council


class MemberTurns:
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
        streaming: StreamedTurns,
        memory: CouncilMemory,
        moderation: CouncilModeration | None,
        requests: PendingRequests,
        lifecycle: CouncilLifecycle,
        tools: ToolTurns | None = None,
    ) -> None:
        self.db = db
        self.tools = tools
        self.calls = calls
        self.publisher = publisher
        self.claims = claims
        self.transcripts = transcripts
        self.patience = patience
        self.seats = seats
        self.posting = posting
        self.streaming = streaming
        self.memory = memory
        self.moderation = moderation
        self.requests = requests
        self.lifecycle = lifecycle
        self._speaking: dict[int, set[str]] = {}  # who is answering now, per council (shown by the publisher)

    def forget(self, council_id: int) -> None:
        self._speaking.pop(council_id, None)

    async def language(self, council: Council) -> Language | None:
        """The language the council is held in now (bot/council/language.py)."""
        return await self.transcripts.language(council, keep=self.lifecycle.is_running(council.id))

    async def transcript_text(self, council: Council, seat: Seat) -> str:
        """The discussion so far as plain text, as `seat` may see it, within the context budget."""
        lines = await self.transcripts.lines(council.id, keep=self.lifecycle.is_running(council.id))
        return digest(
            seat,
            await self.seats.of(council.id),
            [TranscriptLine(line.author_kind, line.author_name, line.content, line.visibility) for line in lines],
            budget_tokens=self.calls.context_budget,
        )

    async def screened_aside(self, council: Council, author_name: str, text: str | None) -> str | None:
        """A member's short aside (a chair's reason) as it may be shown; None if the policy has a concern."""
        if text is None or self.moderation is None:
            return text
        screened = await self.moderation.screen_ai(council, author_name, text)
        return None if screened.concerns else screened.text

    async def answer_requests(self, council: Council) -> None:
        """Members answer the humans who replied to them or named them, oldest request first."""
        if not self.requests.take(council.id):
            return
        for line in await deliberation_repo.open_requests(self.db, council.id):
            council = await self.lifecycle.ready(council.id)
            seats = await self.seats.of(council.id)
            seat = next((s for s in seats if s.active and s.name == line.addressed_to), None)
            if seat is None:
                continue
            instruction = addressed_instruction(line.author_name, line.content)
            message = await self.generate(
                council, seats, seat, council.current_round, turn_key=f"ai:reply:{line.id}", instruction=instruction
            )
            await self.posting.post(council, seats, message)

    async def generate(
        self,
        council: Council,
        seats: Sequence[Seat],
        seat: Seat,
        round_number: int,
        *,
        turn_key: str | None = None,
        up_to_id: int | None = None,
        instruction: str | None = None,
        shape: Callable[[str], str] | None = None,
    ) -> CouncilMessage:
        """Ask one member for its turn and store the reply (or the failure notice) before anyone sees it.

        `instruction` is what the mode asks of this turn; `shape` rewrites the reply before it is checked
        and stored (a debate's stance line becomes a marker).
        """
        turn_key = turn_key or f"ai:r{round_number}:{seat.name}"
        # A turn already stored (before a restart) is not asked again. In round-robin the whole
        # transcript is read anyway; a parallel round reads only up to its cutoff, so it asks.
        if up_to_id is None:
            lines = await self.transcripts.lines(council.id, keep=self.lifecycle.is_running(council.id))
            existing = next((line for line in lines if line.turn_key == turn_key), None)
        else:
            existing = await repo.get_message_by_turn(self.db, council.id, turn_key)
            lines = [] if existing is not None else await repo.transcript(self.db, council.id, up_to_id=up_to_id)
        if existing is not None:
            return existing
        request = build_request(
            seat,
            seats,
            topic=council.topic,
            lines=await prompt_lines(self.db, council.id, lines),
            round_number=round_number,
            rounds=council.rounds,
            budget_tokens=self.calls.context_budget,
            instruction=instruction,
            memory=await self.memory.recollections(council),  # templates: earlier sessions' conclusions
            language=of_transcript(council.language, council.topic, lines),
        )
        speaking = self._speaking.setdefault(council.id, set())
        speaking.add(seat.name)
        self.publisher.progress(council, tuple(sorted(speaking)))
        try:
            return await self._ask(
                council,
                seat,
                round_number,
                request,
                turn_key=turn_key,
                stream=up_to_id is None and shape is None,
                shape=shape,
            )
        finally:
            speaking.discard(seat.name)
            self.publisher.progress(council, tuple(sorted(speaking)))

    async def _ask(
        self,
        council: Council,
        seat: Seat,
        round_number: int,
        request: ChatRequest,
        *,
        turn_key: str,
        stream: bool,
        shape: Callable[[str], str] | None,
    ) -> CouncilMessage:
        started = time.perf_counter()
        tools = await self.tools.offered(council, seat, round_number) if self.tools is not None else []
        if stream and not tools and await self.streaming.allowed(council):
            try:
                return await self.streaming.turn(council, seat, round_number, request, started, turn_key=turn_key)
            except ProviderError as error:
                return await self.turn_failed(council, seat, round_number, error, started, turn_key=turn_key)
            except CutShort as cut:
                return await self.turn_failed(
                    council, seat, round_number, cut.error, started, cut=True, turn_key=turn_key
                )
            finally:
                self.transcripts.forget(council.id)  # a streamed line is rewritten as it grows
        try:
            if tools and self.tools is not None:  # a turn with tools is asked whole, call by call
                completion = await self.tools.answer(council, seat, round_number, request, tools, turn_key=turn_key)
            else:
                completion = await self.calls.client(seat.spec).complete(request, timeout=self.calls.timeout)
        except ProviderError as error:
            return await self.turn_failed(council, seat, round_number, error, started, turn_key=turn_key)
        latency_ms = round((time.perf_counter() - started) * 1000)
        # One line per turn, never the words themselves: logs are for operators, transcripts for members.
        log.info(
            "turn council=%s member=%s round=%s duration_ms=%d tokens_in=%s tokens_out=%s",
            council.id,
            seat.name,
            round_number,
            latency_ms,
            completion.input_tokens,
            completion.output_tokens,
        )
        text = shape(completion.text) if shape is not None else completion.text
        # The reply is paid for: an outage now is waited out with the reply in hand, never asked for again.
        return await self.patience.call(
            lambda: self._store_reply(council, seat, round_number, turn_key, text, completion, latency_ms),
            council_id=council.id,
        )

    async def _store_reply(
        self,
        council: Council,
        seat: Seat,
        round_number: int,
        turn_key: str,
        text: str,
        completion: Completion,
        latency_ms: int,
    ) -> CouncilMessage:
        """Screen a reply and store it before anyone sees it; its concerns go to the moderators."""
        screened = await self.moderation.screen_ai(council, seat.name, text) if self.moderation else None
        content = screened.text if screened else text
        if completion.truncated:  # said where everyone reads it: the thread, the export, the others' prompts
            content = cut_at_limit(content, seat.name, seat.spec.max_output_tokens)
        message, created = await repo.add_message(
            self.db,
            council_id=council.id,
            round_number=round_number,
            author_kind="ai",
            author_name=seat.name,
            turn_key=turn_key,
            content=content,
            tokens_in=completion.input_tokens,
            tokens_out=completion.output_tokens,
            visibility="held" if screened and screened.hold else "visible",
            latency_ms=latency_ms,
            claimed_by=self.claims.claimant,
            reasoning=completion.reasoning,
        )
        if created:
            self.transcripts.wrote(message)
        if created and screened is not None and self.moderation is not None:
            await self.moderation.raise_concerns(
                council, message, screened, author_name=seat.name, content=message.content
            )
        return message

    async def turn_failed(
        self,
        council: Council,
        seat: Seat,
        round_number: int,
        error: ProviderError,
        started: float,
        *,
        cut: bool = False,
        turn_key: str | None = None,
    ) -> CouncilMessage:
        """Store the notice for a turn the member could not answer (or, `cut`, not finish), to post next."""
        log.warning(
            "turn failed council=%s member=%s round=%s duration_ms=%.0f error=%s cut=%d",
            council.id,
            seat.name,
            round_number,
            (time.perf_counter() - started) * 1000,
            error.kind,
            cut,
        )
        what = "could not finish its reply" if cut else "could not answer"
        failed_key = "failed:" + (turn_key or f"ai:r{round_number}:{seat.name}").removeprefix("ai:")
        latency_ms = round((time.perf_counter() - started) * 1000)
        message, created = await self.patience.call(
            lambda: repo.add_message(
                self.db,
                council_id=council.id,
                round_number=round_number,
                author_kind="system",
                author_name=seat.name,
                turn_key=failed_key,
                content=f"⚠️ {seat.name} {what} in round {round_number}: {error}",
                latency_ms=latency_ms,
                claimed_by=self.claims.claimant,
            ),
            council_id=council.id,
        )
        if created:
            self.transcripts.wrote(message)
        await self._bench_if_failing(council, seat, round_number, failed_key)
        return message

    async def _bench_if_failing(self, council: Council, seat: Seat, round_number: int, failed_key: str) -> None:
        recent = await repo.recent_turn_keys(self.db, council.id, seat.name, BENCH_AFTER_FAILURES)
        if len(recent) < BENCH_AFTER_FAILURES or not all(key.startswith("failed:") for key in recent):
            return
        if await repo.bench_member(self.db, council.id, seat.name):
            self.seats.forget(council.id)
            log.warning("benched council=%s member=%s round=%s", council.id, seat.name, round_number)
            await repo.add_message(
                self.db,
                council_id=council.id,
                round_number=round_number,
                author_kind="system",
                author_name=seat.name,
                turn_key=f"benched:{seat.name}",
                content=f"🪑 {seat.name} failed {BENCH_AFTER_FAILURES} turns in a row and sits out the rest of this council.",
                claimed_by=self.claims.claimant,
            )
            self.posting.follow_with(council.id, failed_key, f"benched:{seat.name}")
