"""One process runs a council at a time, even when two believe they own its server.

A runner holds a lease on the council row (storage/runner_repository.py), renewed every HEARTBEAT by
one statement for all the councils this process runs. Another process that would run the council leaves
it alone while the lease is fresh and its holder alive; it takes over a lease whose holder ran on this
host and has ended (a crash and restart) at once, and any other after RUNNER_LEASE. Posts stay exactly
once either way (bot/council/claims.py): the lease saves the providers being asked everything twice.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, timedelta
from typing import Protocol

from bot.council.claims import is_gone
from storage import runner_repository as runner_repo
from storage.database import Database
from storage.models import Council, utcnow

log = logging.getLogger(__name__)

RUNNER_LEASE = timedelta(seconds=90)
HEARTBEAT = 20.0  # seconds; well inside the lease


class RunnerHost(Protocol):
    """What the leases ask of the runners they belong to."""

    def has_runners(self) -> bool:
        """Whether any council runs in this process now."""
        ...

    def wake_waiting(self) -> None:
        """Let every waiting council look at its state again (it may have been resumed elsewhere)."""
        ...


class RunnerLeases:
    def __init__(self, db: Database, claimant: str, host: RunnerHost) -> None:
        self.db = db
        self.claimant = claimant
        self.host = host
        self.heartbeat: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()

    async def acquire(self, council_id: int) -> str | None:
        """Run the council here: None when this process may, else the process that runs it."""
        holder = await runner_repo.claim_runner(
            self.db, council_id, self.claimant, stale_before=utcnow() - RUNNER_LEASE, gone=is_gone
        )
        if holder is None and (self.heartbeat is None or self.heartbeat.done()):
            self._idle.clear()
            self.heartbeat = asyncio.create_task(self._beat(), name="council-runner-heartbeat")
        return holder

    async def release(self, council_id: int | None = None) -> None:
        """Let another process run the council (all of this process's, without an id) at once."""
        try:
            await runner_repo.release_runner(self.db, self.claimant, council_id)
        except Exception:  # best effort: an unreleased lease lapses after RUNNER_LEASE anyway
            log.warning("Could not release council %s's runner lease", council_id or "(all)", exc_info=True)

    def leased_elsewhere(self, council: Council) -> bool:
        """Whether another live process holds the council's runner lease now."""
        seen = council.runner_seen_at
        return (
            council.runner not in ("", self.claimant)
            and seen is not None
            and seen.replace(tzinfo=seen.tzinfo or UTC) >= utcnow() - RUNNER_LEASE
            and not is_gone(council.runner)
        )

    def idle(self) -> None:
        """No council runs here any more: the heartbeat stops."""
        self._idle.set()

    async def _beat(self) -> None:
        while True:
            try:
                async with asyncio.timeout(HEARTBEAT):  # no inner task, unlike wait_for
                    await self._idle.wait()
            except TimeoutError:
                pass
            else:
                if not self.host.has_runners():
                    return
                self._idle.clear()  # a runner started as the last one ended: keep beating
                continue
            try:
                await runner_repo.renew_runner(self.db, self.claimant)
            except Exception:
                log.warning("Could not renew this process's runner leases; retried in %.0f s", HEARTBEAT, exc_info=True)
            # A council paused or held here may have been resumed by a command another process served.
            self.host.wake_waiting()
