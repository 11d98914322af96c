"""Throwaway databases for tests and the benchmark: migrated, used once, removed."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import text

from storage.database import Database


@contextlib.asynccontextmanager
async def scratch_database(postgres_url: str | None, workdir: Path) -> AsyncIterator[Database]:
    """A freshly migrated database: an SQLite file in `workdir`, or, given a PostgreSQL URL, a schema
    of its own on that server (so runs never see each other's tables), dropped afterwards."""
    if postgres_url is None:
        db = Database(f"sqlite:///{workdir / f'scratch-{uuid.uuid4().hex[:8]}.db'}")
        try:
            await db.migrate()
            yield db
        finally:
            await db.close()
        return
    schema = f"scratch_{uuid.uuid4().hex[:12]}"
    admin = Database(postgres_url)
    try:
        async with admin.engine.begin() as connection:
            await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        db = Database(postgres_url, connect_args={"server_settings": {"search_path": schema}})
        try:
            await db.migrate()
            yield db
        finally:
            await db.close()
            async with admin.engine.begin() as connection:
                await connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        await admin.close()
