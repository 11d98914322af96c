"""A council cancelled while one of its queries is in flight (concluded, stopped) leaves the pool quiet and whole."""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy import text

from storage.database import Database


async def _busy(db: Database) -> None:
    while True:
        async with db.session() as session:
            await session.execute(text("SELECT count(*) FROM council"))


async def test_cancelling_tasks_mid_query_logs_no_pool_error_and_the_pool_still_serves(
    sqlite_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    # SQLite only: on PostgreSQL, asyncpg leaves a future per connection cut mid-query that asyncio reports when
    # it is collected, in whatever test runs then (noted in the closing note; not the pool's log filtered here).
    db = sqlite_db
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.pool")
    for delay in (0.0, 0.001, 0.002, 0.005, 0.01) * 4:
        tasks = [asyncio.create_task(_busy(db)) for _ in range(4)]
        await asyncio.sleep(delay)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
    async with db.session() as session:
        assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
