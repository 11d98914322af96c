"""The council engine: seats members, runs rounds, and keeps every line in storage before it is shown."""

from __future__ import annotations

import asyncio
import logging
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.catalog import Catalog, MemberSpec
from bot.council.claims import PostClaims
from bot.council.moderation import CouncilModeration
from bot.council.prompts import TranscriptLine, build_request
from bot.council.publisher import CouncilPublisher, PlaceGone
from bot.council.seats import Seat
from bot.council.streaming import CONCLUDED, STOPPED, StreamedTurns
from bot.governance.gate import GovernanceGate
from bot.providers.base import ProviderClient, ProviderError
from storage import repository as repo
from storage.database import Database
from storage.models import Council, CouncilMessage
from storage.repository import ACTIVE_STATES

log = logging.getLogger(__name__)

MODES = ("round-robin", "parallel")
MAX_ROUNDS = 10
MAX_MEMBERS = 8
BENCH_AFTER_FAILURES = 3  # a member failing this many turns in a row sits out the rest of the council
ClientFactory = Callable[[MemberSpec], ProviderClient]


class ConveneError(ValueError):
    """A convene request that cannot be honoured; the message is shown to the user as is."""


@dataclass(frozen=True, slots=True)
class CouncilPlan:
    """A validated convene request."""

    topic: str
    seats: tuple[Seat, ...]
    rounds: int
    mode: str


@dataclass(frozen=True, slots=True)
class ConveneLimits:
    """How much one person and one server may run at once, so nobody runs up the provider bill alone."""

    running_per_user: int = 2
    running_per_server: int = 10
    convenes_per_user_per_hour: int = 6


@dataclass(frozen=True, slots=True)
class CouncilStatus:
    council: Council
    seats: tuple[Seat, ...]
    ai_messages: int
    human_messages: int
    estimated_cost: float


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
    ) -> None:
        self.db = db
        self.catalog = catalog
        self.clients = clients
        self.publisher = publisher
        self.provider_timeout = provider_timeout
        self.moderation = CouncilModeration(self, gate) if gate is not None else None
        self.limits = limits or ConveneLimits()
        self.context_budget = context_budget
        # Show member replies while they are written, where the server's policy allows (bot/council/streaming.py).
        self.stream_replies = stream_replies
        # Lines are claimed in the database before they are posted: one post each, whatever runs them.
        self.claims = PostClaims(db)
        self.streaming = StreamedTurns(self)
        self._ending: set[int] = set()  # councils being concluded while their runner is stopped
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._wakeups: dict[int, asyncio.Event] = {}
        self._waiting: set[int] = set()
        self._follow_ups: dict[tuple[int, str], str] = {}
        self._seats: dict[int, tuple[Seat, ...]] = {}

    # -- convening ---------------------------------------------------------------------------------

    def plan(self, *, topic: str, member_names: str, roles: str | None, rounds: int, mode: str) -> CouncilPlan:
        """Validate a convene request; raise ConveneError with a message for the user."""
        if has_control_characters(topic):
            raise ConveneError("The topic contains control characters; please type it as plain text.")
        topic = clean_text(topic)
        if not 3 <= len(topic) <= 1000:
            raise ConveneError("The topic must be between 3 and 1,000 characters.")
        if mode not in MODES:
            raise ConveneError(f"Mode must be one of: {', '.join(MODES)}.")
        if not 1 <= rounds <= MAX_ROUNDS:
            raise ConveneError(f"Rounds must be between 1 and {MAX_ROUNDS}.")
        names = [name.strip() for name in member_names.replace(";", ",").split(",") if name.strip()]
        if not names:
            raise ConveneError("Name at least one member, e.g. `Claude, DeepSeek, Llama`.")
        specs: list[MemberSpec] = []
        for name in names:
            spec = self.catalog.get(name)
            if spec is None:
                known = ", ".join(m.name for m in self.catalog)
                raise ConveneError(f"There is no member called {name!r}. Available: {known}.")
            if spec in specs:
                raise ConveneError(f"{spec.name} is named twice.")
            specs.append(spec)
        if len(specs) > MAX_MEMBERS:
            raise ConveneError(f"A council seats at most {MAX_MEMBERS} members.")
        missing = [spec for spec in specs if not spec.is_available()]
        if missing:
            details = "; ".join(f"{spec.name} needs {spec.api_key_env}" for spec in missing)
            raise ConveneError(
                f"Not available: {details}. The bot's operator sets these keys in the bot's environment "
                "(see `/council members`)."
            )
        assigned = parse_roles(roles or "", specs)
        seats = tuple(Seat(spec, assigned.get(spec.name, spec.role)) for spec in specs)
        return CouncilPlan(topic=topic, seats=seats, rounds=rounds, mode=mode)

    async def admit(self, *, guild_id: int, user_id: int) -> None:
        """Refuse a convene the server's halt or the running limits do not allow."""
        if self.moderation is not None and (await self.moderation.gate.policy(guild_id)).halted:
            raise ConveneError("Councils in this server are halted by its moderators (`/governance resume-all`).")
        limits = self.limits
        if await repo.count_active_councils(self.db, guild_id, convener_id=user_id) >= limits.running_per_user:
            raise ConveneError(
                f"You already have {limits.running_per_user} council(s) running; conclude one before convening another."
            )
        if await repo.count_active_councils(self.db, guild_id) >= limits.running_per_server:
            raise ConveneError(f"This server already runs {limits.running_per_server} councils; try again later.")
        since = datetime.now(UTC) - timedelta(hours=1)
        if await repo.count_convenes_since(self.db, guild_id, user_id, since) >= limits.convenes_per_user_per_hour:
            raise ConveneError(
                f"You convened {limits.convenes_per_user_per_hour} councils in the last hour; please wait a while."
            )

    async def create(
        self, plan: CouncilPlan, *, guild_id: int, channel_id: int, convener_id: int, convener_name: str
    ) -> Council:
        return await repo.create_council(
            self.db,
            guild_id=guild_id,
            channel_id=channel_id,
            topic=plan.topic,
            mode=plan.mode,
            rounds=plan.rounds,
            convener_id=convener_id,
            convener_name=convener_name,
            members=[(seat.name, seat.role) for seat in plan.seats],
        )

    async def open(self, council_id: int, thread_id: int) -> None:
        """The council has its thread: start it."""
        await repo.set_council_thread(self.db, council_id, thread_id)
        if await repo.transition_council(self.db, council_id, from_states=("starting",), to_state="running"):
            self._spawn(council_id)

    async def abandon(self, council_id: int, reason: str) -> None:
        """Convening failed before the council had a thread."""
        await repo.transition_council(self.db, council_id, from_states=("starting",), to_state="failed", reason=reason)

    async def resume_all(self, owns: Callable[[int], bool] = lambda _guild_id: True) -> list[int]:
        """Restart the runners of councils that were running when the process stopped.

        `owns(guild_id)` says which servers this process serves (its shards); the others' councils are
        left to the process that owns them.
        """
        councils = [c for c in await repo.list_councils_in_state(self.db, ("running",)) if owns(c.guild_id)]
        for council in councils:
            if council.thread_id is not None and council.id not in self._tasks:
                self._spawn(council.id)
        # A council that is not running (paused, held, ended) may still show a reply cut short by the stop.
        for council_id in await repo.councils_with_unfinished_streams(self.db):
            idle = await repo.get_council(self.db, council_id)
            if idle is None or not owns(idle.guild_id):
                continue
            if idle.thread_id is not None and council_id not in self._tasks:
                try:
                    await self.streaming.recover(idle)
                except Exception:
                    log.exception(
                        "Council %s: a streamed reply could not be finished; retried at the next start", council_id
                    )
        return [c.id for c in councils if c.id in self._tasks]

    async def shutdown(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.claims.release()

    # -- control -----------------------------------------------------------------------------------

    async def pause(self, council_id: int) -> bool:
        return await repo.transition_council(self.db, council_id, from_states=("running",), to_state="paused")

    async def resume(self, council_id: int) -> bool:
        council = await repo.get_council(self.db, council_id)
        if (
            council is not None
            and self.moderation is not None
            and (await self.moderation.gate.policy(council.guild_id)).halted
        ):
            raise ConveneError("Councils in this server are halted by its moderators (`/governance resume-all`).")
        changed = await repo.transition_council(self.db, council_id, from_states=("paused",), to_state="running")
        if changed:
            self.continue_council(council_id)
        return changed

    def continue_council(self, council_id: int) -> None:
        """Let a council that was waiting (paused, held, halted) and is running again take its next turn."""
        if council_id in self._tasks:
            self._wake(council_id)
        else:
            self._spawn(council_id)

    async def conclude(self, council_id: int, reason: str) -> bool:
        """End a council now; in-flight member calls are dropped, anything already generated is shown."""
        changed = await repo.transition_council(
            self.db, council_id, from_states=("starting", *ACTIVE_STATES), to_state="concluded", reason=reason
        )
        if not changed:
            return False
        task = self._tasks.get(council_id)
        if task is not None and task is not asyncio.current_task():
            self._ending.add(council_id)  # a reply streaming now is finished with a note, not left as it is
            try:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            finally:
                self._ending.discard(council_id)
        await self._finish(council_id)
        return True

    async def assign(self, council_id: int, member_name: str, role: str) -> Seat:
        """Give a seated member a new role from its next turn on."""
        council = await repo.get_council(self.db, council_id)
        if council is None or council.state not in ACTIVE_STATES:
            raise ConveneError("Roles can only change while the council is running or paused.")
        if has_control_characters(role):
            raise ConveneError("A role may not contain control characters.")
        role = clean_text(role)
        if not 1 <= len(role) <= 100:
            raise ConveneError("A role must be 1 to 100 visible characters.")
        seat = next(
            (s for s in await self.seats(council_id) if s.name.casefold() == member_name.strip().casefold()), None
        )
        if seat is None:
            raise ConveneError(f"{member_name.strip()!r} is not a member of this council.")
        await repo.set_member_role(self.db, council_id, seat.name, role)
        self._seats.pop(council_id, None)
        return Seat(seat.spec, role)

    async def record_human(
        self, *, thread_id: int, message_id: int, author_id: int, author_name: str, content: str
    ) -> bool:
        """Store a human's words in a council thread; members whose turn starts later will see them."""
        council = await repo.get_council_by_thread(self.db, thread_id)
        if council is None or council.state not in ACTIVE_STATES or not content.strip():
            return False
        screened = await self.moderation.screen_human(council, author_name, content) if self.moderation else None
        message, created = await repo.add_message(
            self.db,
            council_id=council.id,
            round_number=council.current_round,
            author_kind="human",
            author_name=author_name,
            author_id=author_id,
            turn_key=f"human:{message_id}",
            content=content,
            # Flagged human words stay out of the members' prompts until a moderator lets them in.
            visibility="held" if screened and screened.hold else "visible",
        )
        if created:
            await repo.record_posted(self.db, message.id, [message_id])
            if screened and screened.concerns and self.moderation:
                await self.moderation.escalate(
                    council,
                    message,
                    screened.concerns,
                    screened.policy,
                    held=screened.hold,
                    author_name=author_name,
                    content=content,
                )
        return created

    async def status(self, council_id: int) -> CouncilStatus | None:
        council = await repo.get_council(self.db, council_id)
        if council is None:
            return None
        seats = await self.seats(council_id)
        lines = await repo.transcript(self.db, council_id)
        cost = sum(
            seat.spec.cost(line.tokens_in, line.tokens_out)
            for line in lines
            if line.author_kind == "ai"
            for seat in seats
            if seat.name == line.author_name
        )
        return CouncilStatus(
            council=council,
            seats=seats,
            ai_messages=sum(line.author_kind == "ai" for line in lines),
            human_messages=sum(line.author_kind == "human" for line in lines),
            estimated_cost=cost,
        )

    async def seats(self, council_id: int) -> tuple[Seat, ...]:
        """The council's seats, read once and kept while it runs: only this engine changes them (assign,
        bench), and it forgets them when it does. (A council is run by the process owning its server.)"""
        cached = self._seats.get(council_id)
        if cached is not None:
            return cached
        seats = []
        for member in await repo.list_members(self.db, council_id):
            spec = self.catalog.get(member.name)
            if spec is not None:  # a member removed from the catalog since cannot speak any more
                seats.append(Seat(spec, member.role, member.benched))
        if council_id in self._tasks:  # kept only while a runner needs them every turn
            self._seats[council_id] = tuple(seats)
        return tuple(seats)

    def is_ending(self, council_id: int) -> bool:
        """Whether the council's runner is being stopped because the council is concluded."""
        return council_id in self._ending

    def is_waiting(self, task: asyncio.Task[object]) -> bool:
        """Whether `task` is a council runner blocked until someone resumes, decides or lifts a halt."""
        return any(self._tasks.get(council_id) is task for council_id in self._waiting)

    async def wait_idle(self, council_id: int) -> None:
        """Wait until the council's runner has stopped (tests and shutdown use this)."""
        task = self._tasks.get(council_id)
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    # -- the runner --------------------------------------------------------------------------------

    def _spawn(self, council_id: int) -> None:
        task = asyncio.create_task(self._run(council_id), name=f"council-{council_id}")
        self._tasks[council_id] = task
        task.add_done_callback(lambda done: self._forget(council_id, done))

    def _forget(self, council_id: int, task: asyncio.Task[None]) -> None:
        # Only this runner's own entry: a new runner for the council may already have replaced it.
        if self._tasks.get(council_id) is task:
            del self._tasks[council_id]
            self._seats.pop(council_id, None)

    def _wake(self, council_id: int) -> None:
        self._wakeups.setdefault(council_id, asyncio.Event()).set()

    async def _run(self, council_id: int) -> None:
        try:
            council = await repo.get_council(self.db, council_id)
            if council is None:
                return
            await self.streaming.recover(council)
            await self._post_unposted(council, await self.seats(council_id), recovering=True)
            if self.moderation is not None:
                await self.moderation.restore(council)
            for round_number in range(max(council.current_round, 1), council.rounds + 1):
                if not await self._wait_until_running(council_id):
                    return
                await repo.set_current_round(self.db, council_id, round_number)
                if council.mode == "parallel":
                    await self._parallel_round(council, await self.seats(council_id), round_number)
                    continue
                for position in range(len(await self.seats(council_id))):
                    if not await self._wait_until_running(council_id):
                        return
                    # Seats are read again before every turn: a role assigned meanwhile applies now.
                    seats = await self.seats(council_id)
                    seat = seats[position]
                    if not seat.benched:
                        await self._post(council, seats, await self._generate(council, seats, seat, round_number))
            if await self._wait_until_running(council_id) and await repo.transition_council(
                self.db,
                council_id,
                from_states=("running",),
                to_state="concluded",
                reason=f"All {council.rounds} round(s) are done.",
            ):
                await self._finish(council_id)
        except asyncio.CancelledError:
            raise
        except PlaceGone as gone:
            log.warning("Council %s lost its thread: %s", council_id, gone)
            await self._end_without_thread(council_id)
        except Exception:
            log.exception("Council %s stopped on an unexpected error", council_id)
            if await repo.transition_council(
                self.db,
                council_id,
                from_states=ACTIVE_STATES,
                to_state="failed",
                reason="The council stopped on an internal error; its transcript is kept.",
            ):
                await self._finish(council_id)

    async def _wait_until_running(self, council_id: int) -> bool:
        """Block while paused, held for review or halted; False once the council has ended."""
        while True:
            council = await repo.get_council(self.db, council_id)
            if council is None or council.state not in ACTIVE_STATES:
                return False
            if council.state == "running":
                return True
            wakeup = self._wakeups.setdefault(council_id, asyncio.Event())
            self._waiting.add(council_id)
            try:
                await wakeup.wait()
            finally:
                self._waiting.discard(council_id)
            wakeup.clear()

    async def _parallel_round(self, council: Council, seats: Sequence[Seat], round_number: int) -> None:
        # Everyone answers the transcript as it stood when the round began; posts follow seat order,
        # each as soon as it and the ones before it are ready.
        cutoff = await repo.last_message_id(self.db, council.id)
        tasks = [
            asyncio.create_task(self._generate(council, seats, seat, round_number, up_to_id=cutoff))
            for seat in seats
            if not seat.benched
        ]
        try:
            for task in tasks:
                await self._post(council, seats, await task)
        finally:
            for task in tasks:
                task.cancel()

    async def _generate(
        self, council: Council, seats: Sequence[Seat], seat: Seat, round_number: int, *, up_to_id: int | None = None
    ) -> CouncilMessage:
        """Ask one member for its turn and store the reply (or the failure notice) before anyone sees it."""
        turn_key = f"ai:r{round_number}:{seat.name}"
        # A turn already stored (before a restart) is not asked again. In round-robin the whole
        # transcript is read anyway; a parallel round reads only up to its cutoff, so it asks.
        if up_to_id is None:
            lines = await repo.transcript(self.db, council.id)
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
            lines=[TranscriptLine(line.author_kind, line.author_name, line.content, line.visibility) for line in lines],
            round_number=round_number,
            rounds=council.rounds,
            budget_tokens=self.context_budget,
        )
        started = time.perf_counter()
        if up_to_id is None and await self.streaming.allowed(council):
            return await self.streaming.turn(council, seat, round_number, request, started)
        try:
            completion = await self.clients(seat.spec).complete(request, timeout=self.provider_timeout)
        except ProviderError as error:
            return await self.turn_failed(council, seat, round_number, error, started)
        # One line per turn, never the words themselves: logs are for operators, transcripts for members.
        log.info(
            "turn council=%s member=%s round=%s duration_ms=%.0f tokens_in=%s tokens_out=%s",
            council.id,
            seat.name,
            round_number,
            (time.perf_counter() - started) * 1000,
            completion.input_tokens,
            completion.output_tokens,
        )
        screened = await self.moderation.screen_ai(council, seat.name, completion.text) if self.moderation else None
        message, created = await repo.add_message(
            self.db,
            council_id=council.id,
            round_number=round_number,
            author_kind="ai",
            author_name=seat.name,
            turn_key=turn_key,
            content=screened.text if screened else completion.text,
            tokens_in=completion.input_tokens,
            tokens_out=completion.output_tokens,
            visibility="held" if screened and screened.hold else "visible",
            claimed_by=self.claims.claimant,
        )
        if created and screened and screened.concerns and self.moderation:
            await self.moderation.escalate(
                council,
                message,
                screened.concerns,
                screened.policy,
                held=screened.hold,
                author_name=seat.name,
                content=message.content,
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
        message, _ = await repo.add_message(
            self.db,
            council_id=council.id,
            round_number=round_number,
            author_kind="system",
            author_name=seat.name,
            turn_key=f"failed:r{round_number}:{seat.name}",
            content=f"⚠️ {seat.name} {what} in round {round_number}: {error}",
            claimed_by=self.claims.claimant,
        )
        await self._bench_if_failing(council, seat, round_number)
        return message

    async def show(self, council: Council, message: CouncilMessage) -> None:
        """Post a stored line now (moderation uses this for approved messages and notices)."""
        try:
            await self._post(council, await self.seats(council.id), message)
        except PlaceGone:
            await self._end_without_thread(council.id)

    async def _end_without_thread(self, council_id: int) -> None:
        if await repo.transition_council(
            self.db,
            council_id,
            from_states=("starting", *ACTIVE_STATES),
            to_state="concluded",
            reason="The council's thread was deleted or closed; its transcript is kept.",
        ):
            council = await repo.get_council(self.db, council_id)
            if council is not None:
                await self.publisher.council_finished(council)

    async def _bench_if_failing(self, council: Council, seat: Seat, round_number: int) -> None:
        recent = await repo.recent_turn_keys(self.db, council.id, seat.name, BENCH_AFTER_FAILURES)
        if len(recent) < BENCH_AFTER_FAILURES or not all(key.startswith("failed:") for key in recent):
            return
        if await repo.bench_member(self.db, council.id, seat.name):
            self._seats.pop(council.id, None)
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
            self.follow_with(council.id, f"failed:r{round_number}:{seat.name}", f"benched:{seat.name}")

    async def _post(
        self, council: Council, seats: Sequence[Seat], message: CouncilMessage, *, recovering: bool = False
    ) -> None:
        # Shielded: once a post has started, cancelling the council must not leave it unrecorded.
        await asyncio.shield(self._post_once(council, seats, message, recovering=recovering))

    async def _post_once(
        self, council: Council, seats: Sequence[Seat], message: CouncilMessage, *, recovering: bool = False
    ) -> None:
        if message.visibility != "visible":
            return
        # A streamed reply is shown already; its notices still follow it. A line claimed by another
        # process (running this council too) is that process's to post: this one skips it.
        if not message.discord_ids and (claim := await self.claims.claim(message)).won:
            # Taken over from a stopped claimant, which may have posted it before recording the post.
            recovering = recovering or claim.took_over
            seat = next((s for s in seats if s.name == message.author_name), None)
            if message.author_kind == "ai" and seat is not None:
                ids = await self.publisher.post_member_message(council, seat, message.content, recovering=recovering)
            else:
                ids = await self.publisher.post_notice(council, message.content, recovering=recovering)
            await repo.record_posted(self.db, message.id, ids)
            message.discord_message_ids = ",".join(map(str, ids))
        # Notices about this line (moderators notified, member benched) follow it directly. After a
        # restart they are posted in transcript order anyway, so knowing them in memory is enough.
        notice_key = self._follow_ups.pop((council.id, message.turn_key), None)
        if notice_key is not None:
            notice = await repo.get_message_by_turn(self.db, council.id, notice_key)
            if notice is not None:
                await self._post_once(council, seats, notice)

    def follow_with(self, council_id: int, turn_key: str, notice_key: str) -> None:
        """Post the notice stored under `notice_key` right after the line stored under `turn_key`."""
        self._follow_ups[(council_id, turn_key)] = notice_key

    async def _post_unposted(self, council: Council, seats: Sequence[Seat], *, recovering: bool = False) -> None:
        """Show every stored line not yet shown; `recovering` after a restart, when some may be."""
        for line in await repo.transcript(self.db, council.id):
            if line.author_kind != "human" and not line.discord_ids and line.visibility == "visible":
                await self._post(council, seats, line, recovering=recovering)

    async def _finish(self, council_id: int) -> None:
        council = await repo.get_council(self.db, council_id)
        if council is None:
            return
        try:
            await self.streaming.recover(council, CONCLUDED if council.state == "concluded" else STOPPED)
            await self._post_unposted(council, await self.seats(council_id))
        except PlaceGone:
            log.warning("Council %s ended without its thread; its transcript is kept", council_id)
        self._wakeups.pop(council_id, None)
        self._seats.pop(council_id, None)
        await self.publisher.council_finished(council)


def has_control_characters(text: str) -> bool:
    """Control characters other than line breaks and tabs have no place in a topic or role."""
    return any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in text)


def clean_text(text: str) -> str:
    """Collapse whitespace and drop invisible format characters (zero-width spaces and the like),
    so that a name or topic that looks empty is empty."""
    visible = "".join(ch for ch in text if unicodedata.category(ch) != "Cf" or ch == "\u200d")
    return " ".join(visible.split())


def parse_roles(text: str, specs: Sequence[MemberSpec]) -> dict[str, str]:
    """Parse `"DeepSeek=Philosopher, Llama=the Realist"` into {member name: role}."""
    roles: dict[str, str] = {}
    by_name = {spec.name.casefold(): spec.name for spec in specs}
    for part in text.replace(";", ",").split(","):
        if not part.strip():
            continue
        name, sep, role = part.partition("=")
        if not sep or not name.strip() or not role.strip():
            raise ConveneError(f"Write roles as `Member=Role, Member=Role`; {part.strip()!r} is not of that form.")
        member = by_name.get(name.strip().casefold())
        if member is None:
            raise ConveneError(f"{name.strip()!r} is given a role but is not a member of this council.")
        if has_control_characters(role):
            raise ConveneError("A role may not contain control characters.")
        role = clean_text(role)
        if not role:
            raise ConveneError(f"The role for {member} is empty.")
        if len(role) > 100:
            raise ConveneError("A role may be at most 100 characters.")
        roles[member] = role
    return roles
