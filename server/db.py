"""The Piccolo engine and pool for one process, and migrations under a PostgreSQL advisory lock.

Piccolo finds its engine through `server.piccolo_conf.DB` and each table's `_meta.db`, both
process-wide. Building a `Database` changes neither; `bind()` (called by `start()` and by
`migrate`) points both at its engine, so a process (or a test) talks to exactly the database
its Settings name, and only the one that is started claims Piccolo.

Piccolo's forward migrations take no lock of their own, so `migrate` holds a session-level
advisory lock on a separate connection while they run: two servers starting at once apply each
migration exactly once.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from piccolo.apps.migrations.commands.forwards import run_forwards
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

from server import piccolo_conf

log = logging.getLogger("roomcast.db")

MIGRATION_LOCK_KEY = 0x726F6F6D63617374  # "roomcast" as a bigint
"""The advisory lock every migrating process queues on."""


class Database:
    """One engine with one asyncpg pool per process, bound to every roomcast table."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self.engine = PostgresEngine(config={"dsn": url}, extensions=())
        self._pool_size = (min_size, max_size)

    def bind(self) -> None:
        """Point Piccolo's configuration and every roomcast table at this engine (process-wide)."""
        os.environ.setdefault("PICCOLO_CONF", "server.piccolo_conf")
        piccolo_conf.DB = self.engine
        for table in all_tables():
            table._meta.db = self.engine

    async def start(self) -> None:
        """Bind Piccolo to this engine and open the pool; must run inside the event loop that will use it."""
        self.bind()
        await self.engine.start_connection_pool(min_size=self._pool_size[0], max_size=self._pool_size[1])

    async def close(self) -> None:
        if self.engine.pool is not None:
            await self.engine.close_connection_pool()

    @property
    def pool(self) -> asyncpg.Pool:
        """The asyncpg pool, for the few hot paths that want plain SQL."""
        pool = self.engine.pool
        if pool is None:
            raise RuntimeError("the database pool is not open")
        return pool

    async def ping(self) -> None:
        async with self.pool.acquire() as connection:
            await connection.fetchval("SELECT 1")


@contextlib.asynccontextmanager
async def advisory_locked(pool: asyncpg.Pool, key: str) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection holding the session-level advisory lock named `key` until the block ends.

    asyncpg resets a connection (`pg_advisory_unlock_all`) when it returns to the pool, so a
    cancelled caller cannot leave the lock held.
    """
    async with pool.acquire() as connection:
        await connection.execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", key)
        try:
            yield connection
        finally:
            await connection.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", key)


class _HeldConnection:
    """What Piccolo's engine reads from its `current_transaction` to run a query: the connection to run it on."""

    __slots__ = ("connection",)

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection


@contextlib.asynccontextmanager
async def on_connection(connection: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    """Piccolo queries in this block run on `connection`, a connection the caller holds, not on a pooled one.

    For work that must stay on one connection, e.g. the one holding an advisory lock
    (`server.qa.service.in_order`), or one already checked out, where a second checkout could
    wait forever on an exhausted pool. Piccolo's own `engine.transaction()` cannot do this: it
    takes a connection from the pool and gives it back at COMMIT, while the lock must outlive
    the COMMIT. For a transaction, open one on the connection inside the block
    (`async with on_connection(c), c.transaction():`); Piccolo's engine runs every query on
    whatever its `current_transaction` names, so its queries are part of it. Nested inside,
    `engine.transaction()` joins this block instead of starting its own.
    """
    engine = piccolo_conf.DB
    if engine is None:
        raise RuntimeError("no database is bound; start a Database first")
    token = engine.current_transaction.set(_HeldConnection(connection))  # type: ignore[arg-type]
    try:
        yield connection
    finally:
        engine.current_transaction.reset(token)


def all_tables() -> list[type[Table]]:
    from server.piccolo_app import APP_CONFIG

    tables: list[type[Table]] = list(APP_CONFIG.table_classes)
    return tables


async def migrate(url: str) -> list[str]:
    """Apply pending migrations under the advisory lock; return the ids applied by this call."""
    lock = await asyncpg.connect(url)
    try:
        await lock.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        database = Database(url)
        database.bind()  # Piccolo's migration runner finds the engine through piccolo_conf
        before = await _applied(lock)
        output = io.StringIO()
        with contextlib.redirect_stdout(output):  # Piccolo prints progress; we log it instead
            result = await run_forwards(app_name="roomcast")
        if not result.success:
            raise RuntimeError(f"migration failed: {result.message}")
        applied = sorted(set(await _applied(lock)) - set(before))
        for migration_id in applied:
            log.info("db.migration.applied", extra={"migration": migration_id})
        del database
        return applied
    finally:
        with contextlib.suppress(Exception):
            await lock.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
        await lock.close()


async def _applied(connection: asyncpg.Connection[Any]) -> list[str]:
    exists = await connection.fetchval("SELECT to_regclass('public.migration') IS NOT NULL")
    if not exists:
        return []
    rows = await connection.fetch("SELECT name FROM migration WHERE app_name = 'roomcast'")
    return [row["name"] for row in rows]
