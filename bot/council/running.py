"""The councils' lifecycle in this process: one runner task per running council, from its start (or its resumption
after a restart) to its end.

A runner shows what its council still owes (a half-written reply, unposted lines, what humans wrote while
nobody listened), then runs its rounds in the council's mode, waiting while the council is paused, held or
halted. What passes is waited out and the council goes on from where it was: the database or Discord not
answering (with backoff), a permission the bot lost (paused until someone resumes it). Only an error that will
not pass fails the council. Ending a council (its last round, `conclude`, a lost thread) shows what it still
owes, then its closing embed and ratings. A supervisor restarts a runner that ended without ending its council.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC

from bot.council.claims import PostClaims
from bot.council.deliberation import Deliberation
from bot.council.hearing import HumanVoices
from bot.council.leases import RunnerLeases
from bot.council.lifecycle import CouncilEnded
from bot.council.memory import CouncilMemory
from bot.council.moderation import CouncilModeration
from bot.council.patience import Patience, is_transient
from bot.council.posting import LinePosting
from bot.council.publisher import CouncilPublisher, PermissionMissing, PlaceGone
from bot.council.ratings import PeerRatings
from bot.council.requests import PendingRequests
from bot.council.seats import SeatTable
from bot.council.spending import CouncilSpending
from bot.council.streaming import CONCLUDED, STOPPED, StreamedTurns
from bot.council.transcript_view import TranscriptViews
from bot.council.turns import MemberTurns
from bot.council.validation import ConveneError
from bot.governance.gate import GovernanceGate
from storage import repository as repo
from storage.database import Database
from storage.models import Council, utcnow
from storage.repository import ACTIVE_STATES

log = logging.getLogger(__name__)

SUPERVISE_EVERY = 30.0  # seconds between two looks for running councils without a runner
HALTED = "Councils in this server are halted by its moderators (`/governance resume-all`)."


@dataclass(frozen=True, slots=True)
class RunnerParts:
    """The parts a runner drives: it runs their rounds and shows what they leave to show."""

    posting: LinePosting
    streaming: StreamedTurns
    turns: MemberTurns
    deliberation: Deliberation
    voices: HumanVoices
    memory: CouncilMemory
    ratings: PeerRatings
    moderation: CouncilModeration | None


class CouncilRunners:
    """The CouncilLifecycle of the engine's parts (bot/council/lifecycle.py), and the RunnerHost of its leases."""

    def __init__(
        self,
        db: Database,
        publisher: CouncilPublisher,
        claims: PostClaims,
        patience: Patience,
        seats: SeatTable,
        spending: CouncilSpending,
        transcripts: TranscriptViews,
        requests: PendingRequests,
        gate: GovernanceGate | None,
        *,
        supervise_every: float = SUPERVISE_EVERY,
    ) -> None:
        self.db = db
        self.publisher = publisher
        self.claims = claims
        self.patience = patience
        self.seats = seats
        self.spending = spending
        self.transcripts = transcripts
        self.requests = requests
        self.gate = gate
        self.supervise_every = supervise_every
        self.leases = RunnerLeases(db, claims.claimant, self)
        self.parts: RunnerParts | None = None  # given once the parts exist (`drive`): they use this lifecycle
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self._wakeups: dict[int, asyncio.Event] = {}
        self._waiting: set[int] = set()
        self._ending: set[int] = set()  # councils being concluded while their runner is stopped
        self._supervisor: asyncio.Task[None] | None = None
        self._owns: Callable[[int], bool] = lambda _guild_id: True
        self._started_at = utcnow()

    def drive(self, parts: RunnerParts) -> None:
        """The parts the runners drive (built after this lifecycle, which they are given)."""
        self.parts = parts

    @property
    def _parts(self) -> RunnerParts:
        assert self.parts is not None, "CouncilRunners.drive() was not called"
        return self.parts

    # -- starting, resuming ------------------------------------------------------------------------

    async def open(self, council_id: int, thread_id: int) -> None:
        """The council has its thread: start it."""
        await repo.set_council_thread(self.db, council_id, thread_id)
        if await repo.transition_council(self.db, council_id, from_states=("starting",), to_state="running"):
            self.spawn(council_id, fresh=True)

    async def resume_all(self, owns: Callable[[int], bool] = lambda _guild_id: True) -> list[int]:
        """Restart the runners of councils that were running when the process stopped.

        `owns(guild_id)` says which servers this process serves (its shards); the others' councils are
        left to the process that owns them. Councils a stop caught while they were being convened are opened
        or cleaned up; a supervisor then keeps every running council here running.
        """
        parts = self._parts
        self._owns = owns
        await self._settle_unstarted(owns)
        councils = [c for c in await repo.list_councils_in_state(self.db, ("running",)) if owns(c.guild_id)]
        for council in councils:
            if council.thread_id is not None and council.id not in self.tasks:
                self.spawn(council.id)
        # A council that is not running (paused, held, ended) may still show a reply cut short by the stop.
        for council_id in await repo.councils_with_unfinished_streams(self.db):
            idle = await repo.get_council(self.db, council_id)
            if idle is None or not owns(idle.guild_id):
                continue
            if idle.thread_id is not None and council_id not in self.tasks:
                try:
                    await parts.streaming.recover(idle)
                except Exception:
                    log.exception(
                        "Council %s: a streamed reply could not be finished; retried at the next start", council_id
                    )
        await parts.ratings.recover(owns)  # peer ratings: a scoreboard stored but not posted before the stop
        await parts.memory.recover(owns)  # templates: minutes of sessions that ended as the process stopped
        if self._supervisor is None or self._supervisor.done():
            self._supervisor = asyncio.create_task(self._supervise(), name="council-supervisor")
        return [c.id for c in councils if c.id in self.tasks]

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

    async def shutdown(self) -> None:
        await self._parts.voices.unheard.close()
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        tasks = list(self.tasks.values())
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
        if council is not None and self.gate is not None and (await self.gate.policy(council.guild_id)).halted:
            raise ConveneError(HALTED)
        changed = await repo.transition_council(self.db, council_id, from_states=("paused",), to_state="running")
        if changed:
            self.continue_council(council_id)
        return changed

    def continue_council(self, council_id: int) -> None:
        if council_id in self.tasks:
            self._wake(council_id)
        else:
            self.spawn(council_id)

    async def conclude(self, council_id: int, reason: str, *, rate: bool = True) -> bool:
        """End a council now; in-flight member calls are dropped, anything already generated is shown.
        `rate`: run the automatic peer ratings (not when moderators end a council)."""
        changed = await repo.transition_council(
            self.db, council_id, from_states=("starting", *ACTIVE_STATES), to_state="concluded", reason=reason
        )
        if not changed:
            return False
        task = self.tasks.get(council_id)
        if task is not None and task is not asyncio.current_task():
            self._ending.add(council_id)  # a reply streaming now is finished with a note, not left as it is
            try:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            finally:
                self._ending.discard(council_id)
        await self._finish(council_id, rate=rate)
        return True

    async def end_without_thread(self, council_id: int) -> None:
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

    async def pause_for(self, council_id: int, missing: PermissionMissing) -> bool:
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

    # -- what the parts may ask (CouncilLifecycle) and the leases (RunnerHost) -------------------------

    async def ready(self, council_id: int) -> Council:
        if self._parts.voices.unheard.pending:  # humans' words kept through an outage come before the next turn
            await self._parts.voices.unheard.drain()
        council = await self._wait_until_running(council_id)
        if council is None:
            raise CouncilEnded(council_id)
        return council

    def is_running(self, council_id: int) -> bool:
        return council_id in self.tasks

    def is_ending(self, council_id: int) -> bool:
        return council_id in self._ending

    def is_waiting(self, task: asyncio.Task[object]) -> bool:
        """Whether `task` is a council runner blocked until someone resumes, decides or lifts a halt (or
        the runners' heartbeat while every council here is, or the supervisor between its looks)."""
        if task is self.leases.heartbeat:
            return all(council_id in self._waiting for council_id in self.tasks)
        if task is self._supervisor:
            return True  # it only looks every so often
        return any(self.tasks.get(council_id) is task for council_id in self._waiting)

    def waits(self, council_id: int) -> bool:
        """Whether the council's runner here waits for it to run again (paused, held, halted)."""
        return council_id in self._waiting

    def has_runners(self) -> bool:
        return bool(self.tasks)

    def wake_waiting(self) -> None:
        for council_id in list(self._waiting):
            self._wake(council_id)

    async def wait_idle(self, council_id: int) -> None:
        """Wait until the council's runner has stopped (tests and shutdown use this)."""
        task = self.tasks.get(council_id)
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    # -- the runner --------------------------------------------------------------------------------

    def spawn(self, council_id: int, *, fresh: bool = False) -> None:
        """Start the council's runner. `fresh`: the council has just been opened in this process, which has
        heard its thread all along (nothing to read back from its history)."""
        task = asyncio.create_task(self._run(council_id, fresh), name=f"council-{council_id}")
        self.tasks[council_id] = task
        self.seats.keep(council_id)  # read every turn while it runs here
        task.add_done_callback(lambda done: self._forget(council_id, done))

    def _forget(self, council_id: int, task: asyncio.Task[None]) -> None:
        # Only this runner's own entry: a new runner for the council may already have replaced it.
        if self.tasks.get(council_id) is task:
            del self.tasks[council_id]
            self.seats.release(council_id)
            self.transcripts.forget(council_id)
            if not self.tasks:
                self.leases.idle()

    def _wake(self, council_id: int) -> None:
        self._wakeups.setdefault(council_id, asyncio.Event()).set()

    async def _run(self, council_id: int, fresh: bool = False) -> None:
        holder = await self.patience.call(lambda: self.leases.acquire(council_id), council_id=council_id)
        if holder is not None:
            log.warning("Council %s runs in another process (%s); this one leaves it alone", council_id, holder)
            return
        try:
            await self._keep_running(council_id, fresh)
        finally:
            task = asyncio.current_task()
            if task is None or not task.cancelling():  # a shutdown releases every lease at once
                await self.leases.release(council_id)

    async def _keep_running(self, council_id: int, fresh: bool = False) -> None:
        """Run the council to its end, waiting out what passes (see the module docstring)."""
        tries = 0
        while True:
            try:
                if tries:  # the runner goes on only once the database answers again
                    await repo.get_council(self.db, council_id)
                    self.patience.recovered(council_id)
                    self.patience.stats.runner_restarts += 1
                    tries = 0
                await self._run_council(council_id, catch_up=not fresh)
                return
            except asyncio.CancelledError:
                raise
            except CouncilEnded:
                return  # concluded, or failed, by someone else meanwhile: they finished it
            except PlaceGone as gone:
                log.warning("Council %s lost its thread: %s", council_id, gone)
                await self.patience.call(lambda: self.end_without_thread(council_id), council_id=council_id)
                return
            except PermissionMissing as missing:
                paused = await self.patience.call(
                    lambda lost=missing: self.pause_for(council_id, lost), council_id=council_id
                )
                if not paused:
                    return
                council = await self.patience.call(lambda: self._wait_until_running(council_id), council_id=council_id)
                if council is None:
                    return
                self.patience.stats.runner_restarts += 1
                fresh = False
            except Exception as error:
                if not is_transient(error):
                    log.exception("Council %s stopped on an unexpected error", council_id)
                    await self._fail(council_id)
                    return
                tries += 1
                fresh = False  # humans may have written while it waited, unheard if the database was away
                await self.patience.wait(error, tries, council_id=council_id)

    async def _run_council(self, council_id: int, *, catch_up: bool = True) -> None:
        parts = self._parts
        council = await repo.get_council(self.db, council_id)
        if council is None:
            return
        await parts.streaming.recover(council)
        await parts.posting.post_unposted(council, await self.seats.of(council_id), recovering=True)
        if catch_up:
            await parts.voices.catch_up(council)  # what humans wrote while this runner was not running
        self.transcripts.forget(council_id)  # the lines just posted are read again, as posted
        if parts.moderation is not None:
            await parts.moderation.restore(council)
        self.requests.expect(council_id)  # requests made before a restart are looked for once
        reason: str | None = None
        for round_number in range(max(council.current_round, 1), council.rounds + 1):
            council = await self.ready(council_id)
            if reason := await self.spending.limit_reached(council):
                break
            await repo.set_current_round(self.db, council_id, round_number)
            council.current_round = round_number
            if reason := await parts.deliberation.round(council, round_number):
                break
        else:
            reason = await parts.deliberation.finale(await self.ready(council_id))
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

    async def _finish(self, council_id: int, *, rate: bool = True) -> None:
        """Show what the ended council still owes (a cut reply, unposted lines, minutes), then its closing
        embed and ratings. The closing embed comes whatever failed before it."""
        parts = self._parts
        council = await repo.get_council(self.db, council_id)
        if council is None:
            return
        try:
            await parts.streaming.recover(council, CONCLUDED if council.state == "concluded" else STOPPED)
            await parts.posting.post_unposted(council, await self.seats.of(council_id))
            await parts.memory.close_session(council)  # templates: the session's minutes, before the closing embed
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
        parts.memory.forget(council_id)
        self.transcripts.forget(council_id)
        self._wakeups.pop(council_id, None)
        self.seats.forget(council_id)
        parts.turns.forget(council_id)
        await self.publisher.council_finished(council)
        if rate:  # peer ratings hook: only for a council that concluded (bot/council/ratings.py)
            await parts.ratings.after_conclude(council)

    # -- the supervisor ----------------------------------------------------------------------------

    async def _supervise(self) -> None:
        """Every `supervise_every` seconds, restart the runner of a council that runs here and has none: a
        runner that ended without concluding its council, for any reason, is noticed and replaced."""
        while True:
            await asyncio.sleep(self.supervise_every)
            try:
                for council_id in await self.unrun_councils():
                    log.warning("Council %s is running without a runner; restarting it", council_id)
                    self.patience.stats.runner_restarts += 1
                    self.spawn(council_id)
            except Exception as error:
                if not is_transient(error):
                    log.exception("The council supervisor could not look at the councils; it tries again")

    async def unrun_councils(self) -> list[int]:
        """Running councils of this process's servers that no runner runs, here or in a live process."""
        return [
            council.id
            for council in await repo.list_councils_in_state(self.db, ("running",))
            if council.id not in self.tasks
            and council.thread_id is not None
            and self._owns(council.guild_id)
            and not self.leases.leased_elsewhere(council)
        ]
