"""The council engine: the one object the cogs, the rehearsal and the benchmark hold. It builds the engine's parts,
each with the collaborators it uses, and answers for them.

What belongs where, by what changes together (each module says it in its first lines):
convening.py checks and admits a convene request; running.py runs each council's lifecycle; deliberation.py runs
a round in the council's mode; turns.py takes one member's turn (streaming.py when it is shown as written);
posting.py shows stored lines once; moderation.py governs a line; hearing.py hears humans; steering.py changes a
council between turns; ratings.py and memory.py are what a council leaves behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.catalog import Catalog
from bot.council import language
from bot.council.calls import ClientFactory, MemberCalls
from bot.council.claims import PostClaims
from bot.council.convening import ConveneLimits, Convening, CouncilPlan
from bot.council.deliberation import MODES, Deliberation, RoundParts
from bot.council.hearing import HumanVoices, UnheardMessages
from bot.council.language import Language
from bot.council.memory import CouncilMemory
from bot.council.moderation import CouncilModeration
from bot.council.patience import Backoff, Patience
from bot.council.posting import LinePosting
from bot.council.publisher import CouncilPublisher, HeardMessage
from bot.council.ratings import PeerRatings
from bot.council.requests import PendingRequests
from bot.council.running import SUPERVISE_EVERY, CouncilRunners, RunnerParts
from bot.council.seats import Seat, SeatTable
from bot.council.spending import CouncilSpending
from bot.council.steering import CouncilSteering
from bot.council.streaming import StreamedTurns
from bot.council.templates import CouncilTemplates
from bot.council.tool_turns import ToolTurns
from bot.council.transcript_view import TranscriptViews
from bot.council.turns import MemberTurns
from bot.council.validation import (
    MAX_MEMBERS,
    MAX_ROUNDS,
    ConveneError,
    clean_text,
    has_control_characters,
    parse_roles,
)
from bot.governance.gate import GovernanceGate
from bot.tools.hub import ToolHub
from storage import report_repository as reports_repo
from storage import repository as repo
from storage import template_repository as templates_repo
from storage.database import Database
from storage.models import Council

__all__ = [
    "MAX_MEMBERS",
    "MAX_ROUNDS",
    "MODES",
    "ConveneError",
    "ConveneLimits",
    "CouncilEngine",
    "CouncilPlan",
    "CouncilStatus",
    "clean_text",
    "has_control_characters",
    "parse_roles",
]


MEMBER_TOOLS_WAIT = 2.0  # seconds /council info waits for tool servers to list their tools


@dataclass(frozen=True, slots=True)
class CouncilStatus:
    council: Council
    seats: tuple[Seat, ...]
    ai_messages: int
    human_messages: int
    estimated_cost: float
    chair: str | None = None
    template_name: str | None = None  # a session of this permanent council


class CouncilEngine:
    """Runs councils as asyncio tasks; all state lives in the database, so a restart can pick them up."""

    def __init__(
        self,
        db: Database,
        catalog: Catalog,
        clients: ClientFactory,
        publisher: CouncilPublisher,
        *,
        provider_timeout: float = 120.0,
        gate: GovernanceGate | None = None,
        limits: ConveneLimits | None = None,
        context_budget: int | None = 6000,
        stream_replies: bool = False,
        peer_ratings: bool = False,
        backoff: Backoff | None = None,
        supervise_every: float = SUPERVISE_EVERY,
        tools: ToolHub | None = None,
    ) -> None:
        """`stream_replies`: show member replies while they are written, where the server's policy allows;
        `peer_ratings`: members rate each other when a council concludes; `backoff`: how outages are waited
        out (bot/council/patience.py); `tools`: the MCP servers members may call (bot/tools/)."""
        self.db = db
        self.catalog = catalog
        self.publisher = publisher
        calls = MemberCalls(clients, provider_timeout, context_budget)
        # Outages (the database or Discord away for a while) are waited out, and shown.
        self.patience = Patience(backoff, on_waiting=lambda council_id, why: publisher.waiting(council_id, why))
        # Lines are claimed in the database before they are posted: one post each, whatever runs them.
        claims = PostClaims(db)
        transcripts = TranscriptViews(db)  # running councils' transcripts, kept between turns
        self.seat_table = SeatTable(db, catalog)
        self.spending = CouncilSpending(db, catalog)
        requests = PendingRequests()
        self.convening = Convening(db, catalog, gate, limits)
        # Checking a convene request (ConveneError says why not), admitting it, storing it: convening.py.
        self.plan = self.convening.plan
        self.admit = self.convening.admit
        self.create = self.convening.create
        self.templates = CouncilTemplates(db, self.convening)
        self.runners = CouncilRunners(
            db,
            publisher,
            claims,
            self.patience,
            self.seat_table,
            self.spending,
            transcripts,
            requests,
            gate,
            supervise_every=supervise_every,
        )
        lifecycle = self.runners
        posting = LinePosting(db, publisher, claims, self.patience, self.seat_table, transcripts, lifecycle)
        self.moderation = (
            CouncilModeration(db, gate, publisher, posting, transcripts, claims, requests, lifecycle)
            if gate is not None
            else None
        )
        self.steering = CouncilSteering(db, catalog, self.seat_table, posting)
        memory = CouncilMemory(db, calls, self.seat_table, posting, self.moderation)
        streaming = StreamedTurns(
            db,
            calls,
            publisher,
            claims,
            transcripts,
            self.patience,
            self.seat_table,
            posting,
            self.moderation,
            lifecycle,
            enabled=stream_replies,
        )
        turns = MemberTurns(
            db,
            calls,
            publisher,
            claims,
            transcripts,
            self.patience,
            self.seat_table,
            posting,
            streaming,
            memory,
            self.moderation,
            requests,
            lifecycle,
            ToolTurns(db, tools, calls, posting, claims, self.patience, self.seat_table, self.moderation)
            if tools is not None
            else None,
        )
        self.turns = turns
        deliberation = Deliberation(RoundParts(db, calls, turns, posting, self.seat_table, self.spending, lifecycle))
        self.voices = HumanVoices(db, publisher, self.seat_table, self.moderation, requests, self.patience)
        # Peer ratings (bot/council/ratings.py); `peer_ratings`: also automatically when a council concludes.
        self.ratings = PeerRatings(
            db, calls, publisher, self.seat_table, self.spending, self.moderation, automatic=peer_ratings
        )
        self.runners.drive(
            RunnerParts(posting, streaming, turns, deliberation, self.voices, memory, self.ratings, self.moderation)
        )

    async def member_tools(self, council: Council, seats: Sequence[Seat]) -> dict[str, list[tuple[str, str]]]:
        """Per member, the tools it may call in `council` and the policy for each, as far as their servers answer
        within a couple of seconds (an info command must answer Discord in three); a server that does not is
        named so."""
        tool_turns = self.turns.tools
        if tool_turns is None:
            return {}
        listed: dict[str, list[tuple[str, str]]] = {}
        for seat in seats:
            if not seat.spec.tools:
                continue
            try:
                async with asyncio.timeout(MEMBER_TOOLS_WAIT):
                    infos = await tool_turns.tools_for(council, seat)
            except TimeoutError:
                infos = []
            if council.tools is not None:  # the convener narrowed them: what is left is all there is
                listed[seat.name] = [(f"{info.server}.{info.name}", info.policy) for info in infos]
                continue
            listed[seat.name] = [(f"{info.server}.{info.name}", info.policy) for info in infos] or [
                (pattern, "not available now: its server does not answer") for pattern in seat.spec.tools
            ]
        return listed

    # -- convening ---------------------------------------------------------------------------------

    async def open(self, council_id: int, thread_id: int) -> None:
        """The council has its thread: start it."""
        await self.runners.open(council_id, thread_id)

    async def abandon(self, council_id: int) -> None:
        """Convening failed before the council had a thread: it never was, and leaves no row behind."""
        await repo.delete_unstarted_council(self.db, council_id)

    async def resume_all(self, owns: Callable[[int], bool] = lambda _guild_id: True) -> list[int]:
        """Restart the runners of councils that were running when the process stopped (see CouncilRunners)."""
        await asyncio.to_thread(language.load)  # a second's work: off the event loop, before any turn needs it
        return await self.runners.resume_all(owns)

    async def shutdown(self) -> None:
        await self.runners.shutdown()

    # -- control -----------------------------------------------------------------------------------

    async def pause(self, council_id: int) -> bool:
        return await self.runners.pause(council_id)

    async def resume(self, council_id: int) -> bool:
        return await self.runners.resume(council_id)

    async def conclude(self, council_id: int, reason: str, *, rate: bool = True) -> bool:
        """End a council now; in-flight member calls are dropped, anything already generated is shown."""
        return await self.runners.conclude(council_id, reason, rate=rate)

    async def record_human(
        self,
        *,
        thread_id: int,
        message_id: int,
        author_id: int,
        author_name: str,
        content: str,
        replied_to: str | None = None,
    ) -> bool:
        """Store a human's words in a council thread; members whose turn starts later will see them."""
        return await self.voices.record(
            thread_id, HeardMessage(message_id, author_id, author_name, content, replied_to=replied_to)
        )

    @property
    def unheard(self) -> UnheardMessages:
        """Humans' words written while the database was away, kept until it answers."""
        return self.voices.unheard

    # -- reading -----------------------------------------------------------------------------------

    async def status(self, council_id: int) -> CouncilStatus | None:
        council = await repo.get_council(self.db, council_id)
        if council is None:
            return None
        seats = await self.seats(council_id)
        # Counted in the database: the starter embed asks for this every few seconds while the council runs.
        ai_messages, human_messages = await reports_repo.line_counts(self.db, council_id)
        chair = self.chair_seat(council, seats) if council.mode in ("conductor", "review") or council.chair else None
        return CouncilStatus(
            council=council,
            seats=seats,
            ai_messages=ai_messages,
            human_messages=human_messages,
            # Every call counts: turns, a chair's choices, review rankings.
            estimated_cost=await self.spending.cost(council_id),
            chair=chair.name if chair else None,
            template_name=await templates_repo.template_name(self.db, council.template_id)
            if council.template_id is not None
            else None,
        )

    async def language(self, council: Council) -> Language | None:
        """The language the council is held in now (bot/council/language.py)."""
        return await self.turns.language(council)

    async def seats(self, council_id: int) -> tuple[Seat, ...]:
        return await self.seat_table.of(council_id)

    def chair_seat(self, council: Council, seats: Sequence[Seat]) -> Seat | None:
        return self.seat_table.chair(council, seats)

    async def cost(self, council_id: int) -> float:
        return await self.spending.cost(council_id)

    # -- runners -----------------------------------------------------------------------------------

    @property
    def supervise_every(self) -> float:
        return self.runners.supervise_every

    @supervise_every.setter
    def supervise_every(self, seconds: float) -> None:
        self.runners.supervise_every = seconds

    @property
    def _tasks(self) -> dict[int, asyncio.Task[None]]:
        """The runners of this process, by council (tests look at them)."""
        return self.runners.tasks

    def is_waiting(self, task: asyncio.Task[object]) -> bool:
        return self.runners.is_waiting(task)

    async def wait_idle(self, council_id: int) -> None:
        """Wait until the council's runner has stopped (tests and shutdown use this)."""
        await self.runners.wait_idle(council_id)

    async def unrun_councils(self) -> list[int]:
        return await self.runners.unrun_councils()
