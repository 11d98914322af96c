"""The database handle: async engine, sessions, and Alembic migrations run at start-up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class DatabaseURLError(ValueError):
    """DATABASE_URL names a database this bot cannot use."""


def async_url(url: str) -> str:
    """Map the URLs people write (`sqlite:///x.db`, `postgresql://…`) to their async drivers."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise DatabaseURLError(f"DATABASE_URL must be sqlite:///path or postgresql://…, not a {backend} URL.")


def safe_url(url: str) -> str:
    """The URL without its password, for logs and messages."""
    return make_url(url).render_as_string(hide_password=True)


# SQLSTATE classes and codes of failures that pass: connection exceptions (08), the server shutting down or
# starting (57P01-57P03), too many connections (53300), and conflicts a retry resolves (40001, 40P01).
_TRANSIENT_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300", "40001", "40P01")
# SQLite's own words for a database that is busy or briefly out of reach (its OperationalError also covers
# permanent mistakes such as "no such table", which must not be waited on).
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "unable to open database file", "disk i/o error")


class _CancelledReset(logging.Filter):
    """Drops what the pool logs as an ERROR when a council is cancelled (concluded, stopped) while a query of
    its was in flight: the connection's rollback is cut short, and the pool discards that connection and opens
    another, as it should. Nothing is lost, and an operator has nothing to do about it."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (
            record.getMessage().startswith("Exception during reset") and isinstance(error, asyncio.CancelledError)
        )


for _pool in ("AsyncAdaptedQueuePool", "NullPool", "StaticPool"):
    logging.getLogger(f"sqlalchemy.pool.impl.{_pool}").addFilter(_CancelledReset())


def is_unavailable(error: BaseException) -> bool:
    """Whether `error` says the database is away or busy for now (refused or lost connection, a server
    restarting, SQLite's lock held past its timeout) rather than that the request itself is wrong."""
    if isinstance(error, OSError | exc.TimeoutError):  # refused connections, DNS, sockets; a full pool
        return True
    if isinstance(error, exc.DBAPIError):
        if error.connection_invalidated:
            return True
        orig = error.orig
        state = str(getattr(orig, "sqlstate", None) or getattr(getattr(orig, "__cause__", None), "sqlstate", "") or "")
        if state and state.startswith(_TRANSIENT_SQLSTATES):
            return True
        if isinstance(orig, OSError):
            return True
        text = str(orig).lower()
        if isinstance(error, exc.OperationalError | exc.InterfaceError) and any(
            words in text for words in _SQLITE_TRANSIENT
        ):
            return True
        return "connection is closed" in text or "connection was closed" in text
    return False


def _sqlite_pragmas(busy_timeout: float) -> Any:
    def apply(dbapi_connection: Any, _record: Any) -> None:
        # WAL lets readers run beside the writer; busy_timeout makes writers queue instead of failing.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return apply


def _sqlite_relaxed_pragmas(busy_timeout: float) -> Any:
    strict = _sqlite_pragmas(busy_timeout)

    def apply(dbapi_connection: Any, record: Any) -> None:
        strict(dbapi_connection, record)
        cursor = dbapi_connection.cursor()
        # Commits reach the write-ahead log, not the disk: a process crash loses nothing, a power loss may lose
        # the last of them, unless a (default, FULL) commit on another connection has synced the log since.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return apply


class Database:
    """One async engine and its session factory."""

    def __init__(self, url: str, *, connect_args: Mapping[str, Any] | None = None, busy_timeout: float = 30.0) -> None:
        """`busy_timeout`: how long an SQLite writer waits for another's lock before the write fails (and
        is waited out by the engine, see bot/council/patience.py)."""
        self._connect_args = dict(connect_args or {})
        self.busy_timeout = busy_timeout
        self.url = async_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self.engine: AsyncEngine = self._engine(relaxed=False)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._relaxed: AsyncEngine | None = None
        self._relaxed_sessions: async_sessionmaker[AsyncSession] | None = None

    def _engine(self, *, relaxed: bool) -> AsyncEngine:
        connect_args = dict(self._connect_args)
        options: dict[str, Any] = {}
        if self.is_sqlite:
            connect_args.setdefault("timeout", self.busy_timeout)
        else:
            options.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
            if relaxed:  # the server reports a commit before its log is flushed to disk
                connect_args["server_settings"] = {
                    **connect_args.get("server_settings", {}),
                    "synchronous_commit": "off",
                }
        engine = create_async_engine(self.url, connect_args=connect_args, **options)
        if self.is_sqlite:
            pragmas = _sqlite_relaxed_pragmas if relaxed else _sqlite_pragmas
            event.listen(engine.sync_engine, "connect", pragmas(self.busy_timeout))
        return engine

    @asynccontextmanager
    async def session(self, *, durable: bool = True) -> AsyncIterator[AsyncSession]:
        """A session that commits on success and rolls back on error.

        `durable=False` is for writes that may be redone safely, such as noting that a stored line was
        posted: their commit does not wait for the disk (about 1.5 ms on SQLite here). A process crash loses
        none of them; a power loss may lose the latest, but any durable commit after them syncs the log they
        are in (on both databases the log is written in order), so only writes since the last durable one
        are at risk.
        """
        if durable:
            sessions = self.sessions
        else:
            if self._relaxed_sessions is None:
                self._relaxed = self._engine(relaxed=True)
                self._relaxed_sessions = async_sessionmaker(self._relaxed, expire_on_commit=False)
            sessions = self._relaxed_sessions
        session = sessions()
        try:
            async with session.begin():
                yield session
        finally:
            # A council cancelled while its session closes must not cut the connection's reset short (the pool
            # would log it and drop the connection): the close finishes even when the caller has gone.
            await asyncio.shield(session.close())

    async def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        async with self.engine.begin() as connection:
            await connection.run_sync(_upgrade_head)

    @property
    def schema(self) -> str | None:
        """The PostgreSQL schema its connections use, when one was set (scratch databases)."""
        return self._connect_args.get("server_settings", {}).get("search_path")

    def twin(self) -> Database:
        """Another pool on the same database, as a second process of the bot would have."""
        return Database(self.url, connect_args=self._connect_args, busy_timeout=self.busy_timeout)

    async def close(self) -> None:
        await self.engine.dispose()
        if self._relaxed is not None:
            await self._relaxed.dispose()


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _upgrade_head(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
