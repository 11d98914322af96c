"""The council engine: seats members, runs rounds, and keeps every line in storage before it is shown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.catalog import Catalog, MemberSpec
from bot.council.claims import PostClaims, is_gone
from bot.council.deliberation import MODES, Deliberation
from bot.council.heard import UnheardMessages
from bot.council.memory import CouncilMemory
from bot.council.moderation import CouncilModeration
from bot.council.patience import Backoff, Patience, is_transient
from bot.council.publisher import (
    CouncilPublisher,
    PermissionMissing,
    PlaceGone,
    PostRefused,
    Table,
)
from bot.council.ratings import PeerRatings
from bot.council.runners import RUNNER_LEASE, RunnerLeases
from bot.council.seats import Seat
from bot.council.steering import CouncilSteering, addressee
from bot.council.streaming import CONCLUDED, STOPPED, StreamedTurns
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
from bot.providers.base import ProviderClient
from storage import deliberation_repository as deliberation_repo
from storage import report_repository as reports_repo
from storage import repository as repo
from storage import template_repository as templates_repo
from storage.database import Database
from storage.models import Council, CouncilMessage, utcnow
from storage.repository import ACTIVE_STATES

log = logging.getLogger(__name__)

__all__ = [
    "MAX_MEMBERS",
    "MAX_ROUNDS",
    "MODES",
    "ConveneError",
    "ConveneLimits",
    "CouncilEngine",
    "CouncilPlan",
    "clean_text",
    "has_control_characters",
    "parse_roles",
]
ClientFactory = Callable[[MemberSpec], ProviderClient]
SUPERVISE_EVERY = 30.0  # seconds between two looks for running councils without a runner


class CouncilEnded(Exception):
    """The council is no longer active (concluded, failed): its runner stops quietly."""


@dataclass(frozen=True, slots=True)
class CouncilPlan:
    """A validated convene request."""

    topic: str
    seats: tuple[Seat, ...]
    rounds: int
    mode: str
    chair: str | None = None
    max_tokens: int | None = None
    max_cost: float | None = None
    template_id: int | None = None  # templates: convened from this permanent council (bot/council/templates.py)


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
    ) -> None:
        self.db = db
        self.catalog = catalog
        self.clients = clients
        self.publisher = publisher
        self.provider_timeout = provider_timeout
        self.moderation = CouncilModeration(self, gate) if gate is not None else None
        self.limits = limits or ConveneLimits()
        self.context_budget = context_budget
        # Outages (the database or Discord away for a while) are waited out, and shown (bot/council/patience.py).
        self.patience = Patience(backoff, on_waiting=self._waiting)
        # Show member replies while they are written, where the server's policy allows (bot/council/streaming.py).
        self.stream_replies = stream_replies
        # Lines are claimed in the database before they are posted: one post each, whatever runs them.
        self.claims = PostClaims(db)
        self.transcripts = TranscriptViews(db)  # running councils' transcripts, kept between turns
        self.streaming = StreamedTurns(self)
        self.deliberation = Deliberation(self)
        self.steering = CouncilSteering(self)
        self.turns = MemberTurns(self)
        self.leases = RunnerLeases(self)
        # Peer ratings (bot/council/ratings.py); `peer_ratings`: also automatically when a council concludes.
        self.ratings = PeerRatings(self, automatic=peer_ratings)
        self.memory = CouncilMemory(self)  # templates: minutes of sessions, recalled in the next ones
        self._ending: set[int] = set()  # councils being concluded while their runner is stopped
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._wakeups: dict[int, asyncio.Event] = {}
        self._waiting: set[int] = set()
        self._follow_ups: dict[tuple[int, str], str] = {}
        self._seats: dict[int, tuple[Seat, ...]] = {}
        self.supervise_every = supervise_every
        self._supervisor: asyncio.Task[None] | None = None
        self._owns: Callable[[int], bool] = lambda _guild_id: True
        self._started_at = utcnow()
        self.unheard = UnheardMessages(self)  # humans' words written while the database was away

    # -- convening ---------------------------------------------------------------------------------

    def plan(
        self,
        *,
        topic: str,
        member_names: str,
        roles: str | None,
        rounds: int,
        mode: str,
        chair: str | None = None,
        max_tokens: int | None = None,
        max_cost: float | None = None,
    ) -> CouncilPlan:
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
        chair_name: str | None = None
        if chair is not None and chair.strip():
            chair_seat = next((s for s in seats if s.name.casefold() == chair.strip().casefold()), None)
            if chair_seat is None:
                raise ConveneError(f"The chair must be one of the council's members; {chair.strip()!r} is not.")
            chair_name = chair_seat.name
        if max_tokens is not None and max_tokens < 1000:
            raise ConveneError("A token limit below 1,000 would end the council before it starts.")
        if max_cost is not None and not 0 < max_cost <= 1000:
            raise ConveneError("A cost limit must be more than $0 and at most $1,000.")
        return CouncilPlan(
            topic=topic,
            seats=seats,
            rounds=rounds,
            mode=mode,
            chair=chair_name,
            max_tokens=max_tokens,
            max_cost=max_cost,
        )

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
            chair=plan.chair,
            max_tokens=plan.max_tokens,
            max_cost=plan.max_cost,
            template_id=plan.template_id,
        )

    async def open(self, council_id: int, thread_id: int) -> None:
        """The council has its thread: start it."""
        await repo.set_council_thread(self.db, council_id, thread_id)
        if await repo.transition_council(self.db, council_id, from_states=("starting",), to_state="running"):
            self._spawn(council_id)

    async def abandon(self, council_id: int) -> None:
        """Convening failed before the council had a thread: it never was, and leaves no row behind."""
        await repo.delete_unstarted_council(self.db, council_id)

    async def resume_all(self, owns: Callable[[int], bool] = lambda _guild_id: True) -> list[int]:
        """Restart the runners of councils that were running when the process stopped.

        `owns(guild_id)` says which servers this process serves (its shards); the others' councils are
        left to the process that owns them. Councils a stop caught while they were being convened are opened
        or cleaned up; a supervisor then keeps every running council here running.
        """
        self._owns = owns
        await self._settle_unstarted(owns)
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
        await self.ratings.recover(owns)  # peer ratings: a scoreboard stored but not posted before the stop
        await self.memory.recover(owns)  # templates: minutes of sessions that ended as the process stopped
        if self._supervisor is None or self._supervisor.done():
            self._supervisor = asyncio.create_task(self._supervise(), name="council-supervisor")
        return [c.id for c in councils if c.id in self._tasks]

    async def _settle_unstarted(self, owns: Callable[[int], bool]) -> None:
        """Councils a stop caught in the middle of `/council convene`: opened if their thread exists, else
        cleaned up (starter deleted, row gone). The convener is told which, privately."""
        for council in await repo.list_councils_in_state(self.db, ("starting",)):
            if not owns(council.guild_id) or council.created_at.replace(tzinfo=UTC) > self._started_at:
                continue  # another process's, or convened in this one just now
            thread_id = council.thread_id or await self.publisher.settle_starter(council)
            if thread_id is not None:
                await self.open(council.id, thread_id)
                council.thread_id = thread_id
                await self.publisher.tell_convener(
                    council,
                    f"The bot restarted while convening council #{council.id} (“{council.topic[:100]}”); it is "
                    f"open now in <#{thread_id}>.",
                )
                continue
            await repo.delete_unstarted_council(self.db, council.id)
            await self.publisher.tell_convener(
                council,
                f"The bot restarted before council #{council.id} (“{council.topic[:100]}”) had its thread; "
                "nothing of it was kept. Please convene it again.",
            )

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
                taken += await self.record_human(
                    thread_id=council.thread_id,
                    message_id=message.message_id,
                    author_id=message.author_id,
                    author_name=message.author_name,
                    content=message.content,
                    replied_to=message.replied_to,
                )
        if taken:
            log.info("Council %s: took in %d message(s) humans wrote while it was not heard", council.id, taken)
        return taken

    async def _supervise(self) -> None:
        """Every SUPERVISE_EVERY, restart the runner of a council that runs here and has none: a runner that
        ended without concluding its council, for any reason, is noticed and replaced."""
        while True:
            await asyncio.sleep(self.supervise_every)
            try:
                for council_id in await self.unrun_councils():
                    log.warning("Council %s is running without a runner; restarting it", council_id)
                    self.patience.stats.runner_restarts += 1
                    self._spawn(council_id)
            except Exception as error:
                if not is_transient(error):
                    log.exception("The council supervisor could not look at the councils; it tries again")

    async def unrun_councils(self) -> list[int]:
        """Running councils of this process's servers that no runner runs, here or in a live process."""
        stale_before = utcnow() - RUNNER_LEASE
        unrun = []
        for council in await repo.list_councils_in_state(self.db, ("running",)):
            if council.id in self._tasks or council.thread_id is None or not self._owns(council.guild_id):
                continue
            seen = council.runner_seen_at
            leased = (
                council.runner not in ("", self.claims.claimant)
                and seen is not None
                and seen.replace(tzinfo=seen.tzinfo or UTC) >= stale_before
                and not is_gone(council.runner)
            )
            if not leased:
                unrun.append(council.id)
        return unrun

    async def shutdown(self) -> None:
        await self.unheard.close()
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.leases.idle()
        await self.leases.release()
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

    async def conclude(self, council_id: int, reason: str, *, rate: bool = True) -> bool:
        """End a council now; in-flight member calls are dropped, anything already generated is shown.
        `rate`: run the automatic peer ratings (not when moderators end a council)."""
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
        await self._finish(council_id, rate=rate)
        return True

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
        """Store a human's words in a council thread; members whose turn starts later will see them.

        A member the human replied to (`replied_to`, the name on the message) or @-named answers them
        after the turn in progress.
        """
        council = await repo.get_council_by_thread(self.db, thread_id)
        if council is None or council.state not in ACTIVE_STATES or not content.strip():
            return False
        addressed_to = addressee(await self.seats(council.id), replied_to, content)
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
            addressed_to=addressed_to,
        )
        if created and addressed_to is not None:
            self.turns.expect_requests(council.id)
        if created:
            await repo.record_posted(self.db, message.id, [message_id])
            if screened is not None and self.moderation is not None:
                await self.moderation.raise_concerns(
                    council, message, screened, author_name=author_name, content=content
                )
        return created

    async def council_of_thread(self, thread_id: int) -> Council | None:
        return await repo.get_council_by_thread(self.db, thread_id)

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
            estimated_cost=await self.cost(council_id),
            chair=chair.name if chair else None,
            template_name=await templates_repo.template_name(self.db, council.template_id)
            if council.template_id is not None
            else None,
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
                seats.append(Seat(spec, member.role, member.benched, member.dismissed))
        if council_id in self._tasks:  # kept only while a runner needs them every turn
            self._seats[council_id] = tuple(seats)
        return tuple(seats)

    def is_ending(self, council_id: int) -> bool:
        """Whether the council's runner is being stopped because the council is concluded."""
        return council_id in self._ending

    def is_waiting(self, task: asyncio.Task[object]) -> bool:
        """Whether `task` is a council runner blocked until someone resumes, decides or lifts a halt (or
        the runners' heartbeat while every council here is, or the supervisor between its looks)."""
        if task is self.leases.heartbeat:
            return all(council_id in self._waiting for council_id in self._tasks)
        if task is self._supervisor:
            return True  # it only looks every so often
        return any(self._tasks.get(council_id) is task for council_id in self._waiting)

    def has_runners(self) -> bool:
        return bool(self._tasks)

    def wake_waiting(self) -> None:
        """Let every waiting council look at its state again (it may have been resumed elsewhere)."""
        for council_id in list(self._waiting):
            self._wake(council_id)

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
            self.transcripts.forget(council_id)
            if not self._tasks:
                self.leases.idle()

    def is_running(self, council_id: int) -> bool:
        """Whether this process runs the council now (its view of the council may be kept in memory)."""
        return council_id in self._tasks

    def forget_seats(self, council_id: int) -> None:
        """The council's seats changed: read them again before the next turn."""
        self._seats.pop(council_id, None)

    def _wake(self, council_id: int) -> None:
        self._wakeups.setdefault(council_id, asyncio.Event()).set()

    async def _run(self, council_id: int) -> None:
        holder = await self.patience.call(lambda: self.leases.acquire(council_id), council_id=council_id)
        if holder is not None:
            log.warning("Council %s runs in another process (%s); this one leaves it alone", council_id, holder)
            return
        try:
            await self._keep_running(council_id)
        finally:
            task = asyncio.current_task()
            if task is None or not task.cancelling():  # a shutdown releases every lease at once
                await self.leases.release(council_id)

    async def _keep_running(self, council_id: int) -> None:
        """Run the council to its end. What passes is waited out and the council goes on from where it was:
        the database or Discord not answering (with backoff), a permission the bot lost (paused until someone
        resumes it). Only an error that will not pass fails the council."""
        tries = 0
        while True:
            try:
                if tries:  # the runner goes on only once the database answers again
                    await repo.get_council(self.db, council_id)
                    self.patience.recovered(council_id)
                    self.patience.stats.runner_restarts += 1
                    tries = 0
                await self._run_council(council_id)
                return
            except asyncio.CancelledError:
                raise
            except CouncilEnded:
                return  # concluded, or failed, by someone else meanwhile: they finished it
            except PlaceGone as gone:
                log.warning("Council %s lost its thread: %s", council_id, gone)
                await self.patience.call(lambda: self._end_without_thread(council_id), council_id=council_id)
                return
            except PermissionMissing as missing:
                paused = await self.patience.call(
                    lambda lost=missing: self._pause_for(council_id, lost), council_id=council_id
                )
                if not paused:
                    return
                council = await self.patience.call(lambda: self._wait_until_running(council_id), council_id=council_id)
                if council is None:
                    return
                self.patience.stats.runner_restarts += 1
            except Exception as error:
                if not is_transient(error):
                    log.exception("Council %s stopped on an unexpected error", council_id)
                    await self._fail(council_id)
                    return
                tries += 1
                await self.patience.wait(error, tries, council_id=council_id)

    async def _run_council(self, council_id: int) -> None:
        council = await repo.get_council(self.db, council_id)
        if council is None:
            return
        await self.streaming.recover(council)
        await self._post_unposted(council, await self.seats(council_id), recovering=True)
        await self.catch_up(council)  # what humans wrote while this runner was not running
        self.transcripts.forget(council_id)  # the lines just posted are read again, as posted
        if self.moderation is not None:
            await self.moderation.restore(council)
        self.turns.expect_requests(council_id)  # requests made before a restart are looked for once
        reason: str | None = None
        for round_number in range(max(council.current_round, 1), council.rounds + 1):
            council = await self.ready(council_id)
            if reason := await self.limit_reached(council):
                break
            await repo.set_current_round(self.db, council_id, round_number)
            council.current_round = round_number
            if reason := await self.deliberation.round(council, round_number):
                break
        else:
            reason = await self.deliberation.finale(await self.ready(council_id))
        reason = reason or f"All {council.rounds} round(s) are done."
        if await self._wait_until_running(council_id) and await repo.transition_council(
            self.db, council_id, from_states=("running",), to_state="concluded", reason=reason
        ):
            await self._finish(council_id)

    async def _fail(self, council_id: int) -> None:
        """An error that will not pass: the council is marked failed and ends with its closing embed."""
        try:
            failed = await repo.transition_council(
                self.db,
                council_id,
                from_states=ACTIVE_STATES,
                to_state="failed",
                reason="The council stopped on an internal error; its transcript is kept.",
            )
        except Exception:
            log.exception("Council %s could not be marked failed; the supervisor looks at it again", council_id)
            return
        if failed:
            await self._finish(council_id)

    async def _pause_for(self, council_id: int, missing: PermissionMissing) -> bool:
        """The bot lost a permission it needs: pause the council and say which; whether it paused."""
        log.warning("Council %s paused: %s", council_id, missing)
        if not await repo.transition_council(self.db, council_id, from_states=("running",), to_state="paused"):
            council = await repo.get_council(self.db, council_id)
            return council is not None and council.state in ACTIVE_STATES  # paused or held meanwhile: wait
        council = await repo.get_council(self.db, council_id)
        if council is not None:
            await self.publisher.warn(
                council,
                f"⏸️ Council #{council_id} is paused: the bot is missing {missing.names()} in this channel or "
                "thread. A server admin can grant it; then the convener (or anyone with Manage Threads) runs "
                "`/council resume` in the thread and the council goes on from where it stopped.",
            )
        return True

    def _waiting(self, council_id: int, why: str | None) -> None:
        self.publisher.waiting(council_id, why)

    async def ready(self, council_id: int) -> Council:
        """The council, once it may take its next turn (it waits while paused, held or halted).
        Raises CouncilEnded once it has ended, which stops its runner."""
        if self.unheard.pending:  # humans' words kept through an outage come before the next turn
            await self.unheard.drain()
        council = await self._wait_until_running(council_id)
        if council is None:
            raise CouncilEnded(council_id)
        return council

    async def _wait_until_running(self, council_id: int) -> Council | None:
        """Block while paused, held for review or halted; the council once it runs, None once it has ended."""
        while True:
            found = await repo.get_council_marked(self.db, council_id)
            if found is None or found[0].state not in ACTIVE_STATES:
                return None
            council, mark = found
            if council.state == "running":
                self.transcripts.marked(council_id, mark)  # tells the next turn whether its view is current
                return council
            wakeup = self._wakeups.setdefault(council_id, asyncio.Event())
            self._waiting.add(council_id)
            try:
                await wakeup.wait()
            finally:
                self._waiting.discard(council_id)
            wakeup.clear()

    async def limit_reached(self, council: Council) -> str | None:
        """Why the council must stop now for its token or cost limit, or None."""
        if council.max_tokens is not None and council.tokens_in + council.tokens_out >= council.max_tokens:
            used = council.tokens_in + council.tokens_out
            return f"The council reached its limit of {council.max_tokens:,} tokens ({used:,} used)."
        if council.max_cost is not None:
            cost = await self.cost(council.id)
            if cost >= council.max_cost:
                return f"The council reached its cost limit of ${council.max_cost:,.2f} (about ${cost:,.2f} spent)."
        return None

    async def cost(self, council_id: int) -> float:
        """The council's estimated cost so far, from the catalog's prices for whoever used the tokens."""
        total = 0.0
        for name, (tokens_in, tokens_out) in (await deliberation_repo.tokens_by_author(self.db, council_id)).items():
            spec = self.catalog.get(name)
            if spec is not None:
                total += spec.cost(tokens_in, tokens_out)
        return total

    def chair_seat(self, council: Council, seats: Sequence[Seat]) -> Seat | None:
        """The chair: the one chosen at convene, else the catalog's coordinator, else the first member;
        whoever of them still takes turns."""
        active = [seat for seat in seats if seat.active]
        coordinator = self.catalog.coordinator
        for name in (council.chair, coordinator.name if coordinator else None):
            seat = next((s for s in active if s.name == name), None)
            if seat is not None:
                return seat
        return active[0] if active else None

    async def show(self, council: Council, message: CouncilMessage, *, recovering: bool = False) -> None:
        """Post a stored line now (moderation uses this for approved messages and notices, memory for minutes)."""
        try:
            await self.post(council, await self.seats(council.id), message, recovering=recovering)
        except PlaceGone:
            await self._end_without_thread(council.id)
        except PermissionMissing as missing:
            # The line stays stored and unposted: the council's runner posts it once it goes on.
            await self._pause_for(council.id, missing)

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

    async def post(
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
        # Notices about this line (moderators notified, member benched) follow it directly. After a
        # restart they are posted in transcript order anyway, so knowing them in memory is enough.
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

    def follow_with(self, council_id: int, turn_key: str, notice_key: str) -> None:
        """Post the notice stored under `notice_key` right after the line stored under `turn_key`."""
        self._follow_ups[(council_id, turn_key)] = notice_key

    async def _post_unposted(self, council: Council, seats: Sequence[Seat], *, recovering: bool = False) -> None:
        """Show every stored line not yet shown; `recovering` after a restart, when some may be."""
        for line in await repo.transcript(self.db, council.id):
            if line.author_kind != "human" and line.posted_at is None and line.visibility == "visible":
                await self.post(council, seats, line, recovering=recovering)

    async def _finish(self, council_id: int, *, rate: bool = True) -> None:
        """Show what the ended council still owes (a cut reply, unposted lines, minutes), then its closing
        embed and ratings. The closing embed comes whatever failed before it."""
        council = await repo.get_council(self.db, council_id)
        if council is None:
            return
        try:
            await self.streaming.recover(council, CONCLUDED if council.state == "concluded" else STOPPED)
            await self._post_unposted(council, await self.seats(council_id))
            await self.memory.close_session(council)  # templates: the session's minutes, before the closing embed
        except PlaceGone:
            log.warning("Council %s ended without its thread; its transcript is kept", council_id)
            rate = False
        except PermissionMissing as missing:
            log.warning("Council %s ended with lines unposted: %s", council_id, missing)
            await self.publisher.warn(
                council,
                f"Council #{council_id} has ended, but the bot is missing {missing.names()} and could not show "
                "all of it in its thread; `/council export` has its whole transcript.",
            )
            rate = False
        except Exception:
            # The council has ended either way: its closing embed must still come, and the rest is stored.
            log.exception("Council %s: what it still owed could not all be shown; its transcript is kept", council_id)
            rate = False
        self.memory.forget(council_id)
        self.transcripts.forget(council_id)
        self._wakeups.pop(council_id, None)
        self._seats.pop(council_id, None)
        self.turns.forget(council_id)
        await self.publisher.council_finished(council)
        if rate:  # peer ratings hook: only for a council that concluded (bot/council/ratings.py)
            await self.ratings.after_conclude(council)
