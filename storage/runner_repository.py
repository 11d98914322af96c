"""Which process runs a council: a lease on the council row, taken with conditional UPDATEs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select, update

from storage.database import Database
from storage.models import Council, utcnow


async def claim_runner(
    db: Database, council_id: int, claimant: str, *, stale_before: datetime, gone: Callable[[str], bool]
) -> str | None:
    """Become the council's runner; None when this claimant runs it now, else the runner that does.

    Won when nobody runs it or this claimant does; taken over when the runner has not renewed its lease
    since `stale_before` or `gone(runner)` says its process has ended. Of two claimants racing, one wins."""
    async with db.session() as session:
        result = await session.execute(
            update(Council)
            .where(Council.id == council_id, Council.runner.in_(("", claimant)))
            .values(runner=claimant, runner_seen_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            return None
        row = (
            await session.execute(select(Council.runner, Council.runner_seen_at).where(Council.id == council_id))
        ).one_or_none()
        if row is None:
            return ""  # no such council: nobody runs it
        holder, seen = row
        if seen is not None and _aware(seen) >= stale_before and not gone(holder):
            return holder
        seen_matches = Council.runner_seen_at.is_(None) if seen is None else Council.runner_seen_at == seen
        result = await session.execute(
            update(Council)
            .where(Council.id == council_id, Council.runner == holder, seen_matches)
            .values(runner=claimant, runner_seen_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return None if result.rowcount == 1 else holder


async def renew_runner(db: Database, claimant: str) -> int:
    """Say this claimant still runs its councils; how many it runs."""
    async with db.session() as session:
        result = await session.execute(
            update(Council)
            .where(Council.runner == claimant)
            .values(runner_seen_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return result.rowcount


async def release_runner(db: Database, claimant: str, council_id: int | None = None) -> None:
    """Let go of one council (or, without an id, all of them): another process may run it at once."""
    query = update(Council).where(Council.runner == claimant)
    if council_id is not None:
        query = query.where(Council.id == council_id)
    async with db.session() as session:
        await session.execute(query.values(runner="", runner_seen_at=None).execution_options(synchronize_session=False))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
