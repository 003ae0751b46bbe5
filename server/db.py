"""The Piccolo engine and pool of one process, its transactions, and migrations under an advisory lock.

Piccolo finds a table's engine through the table (`Table._meta.db`) and its migration runner
through `server.piccolo_conf.DB`; both are process-wide. Building a `Database` changes neither:
`start()` (and `migrate`, through `bind()`) points both at this URL's engine, so a process (or a
test) talks to exactly the database its Settings name. One process talks to one database at a
time; tests start one per test, one test at a time.

Every started `Database` of one URL in a process shares one engine and one pool (the in-process SAQ
worker is handed the web app's; a test, or a job run by hand beside a running app, that starts
another gets the same engine). That is what makes `transaction()` safe: Piccolo keeps
an open transaction in a context variable of its engine, and a table's query joins it only if the
table is bound to that same engine.

Piccolo's forward migrations take no lock of their own, so `migrate` holds a session-level
advisory lock on a separate connection while they run: two servers starting at once apply each
migration exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

import asyncpg
from piccolo.apps.migrations.commands.forwards import run_forwards
from piccolo.apps.migrations.tables import Migration
from piccolo.engine.postgres import PostgresEngine, PostgresTransaction
from piccolo.querystring import QueryString
from piccolo.table import Table

from server import piccolo_conf

log = logging.getLogger("roomcast.db")

MIGRATION_LOCK_KEY = 0x726F6F6D63617374  # "roomcast" as a bigint
"""The advisory lock every migrating process queues on."""

Isolation = Literal["read_committed", "repeatable_read", "serializable"]


@dataclass(slots=True)
class _Started:
    engine: PostgresEngine
    users: int = 0


_STARTED: dict[tuple[str, asyncio.AbstractEventLoop], _Started] = {}
"""The engine of each URL (and event loop: a pool serves only the loop that opened it) that has a
started `Database` in this process, and how many of them are started."""


NOW = QueryString("now()")
"""The database's clock (its transaction's start) as a value in a Piccolo insert or update."""


class Database:
    """The process's engine and asyncpg pool for one database URL, and the tables bound to it."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self.engine = PostgresEngine(config={"dsn": url}, extensions=())
        """Replaced at `start()` by the engine already started for this URL, if there is one."""
        self._pool_size = (min_size, max_size)
        self._started: tuple[str, asyncio.AbstractEventLoop] | None = None

    def bind(self) -> None:
        """Point Piccolo's configuration and every table (roomcast's and Piccolo's `Migration`) at this engine."""
        _bind(self.engine)

    async def start(self) -> None:
        """Open the pool (or share the one this URL already has in this event loop) and bind Piccolo to it.

        Must run inside the event loop that will use it. The first `Database` started for a URL
        sets the pool's size; the pool closes when the last of them closes.
        """
        key = (self.url, asyncio.get_running_loop())
        started = _STARTED.get(key)
        if started is None:
            await self.engine.start_connection_pool(min_size=self._pool_size[0], max_size=self._pool_size[1])
            started = _STARTED.get(key)
            if started is None:
                started = _STARTED[key] = _Started(self.engine)
            else:  # another start of this URL finished first: use its pool
                await self.engine.close_connection_pool()
        self.engine = started.engine
        started.users += 1
        self._started = key
        self.bind()

    async def close(self) -> None:
        """Give up this `Database`'s share of the pool; the last one closes it.

        If the tables were bound to it and another `Database` is still started (a test's own next
        to an app running in another event loop), they are bound to that one again.
        """
        key, self._started = self._started, None
        started = _STARTED.get(key) if key is not None else None
        if key is None or started is None or started.engine is not self.engine:
            return
        started.users -= 1
        if started.users > 0:
            return
        del _STARTED[key]
        if self.engine.pool is not None:
            await self.engine.close_connection_pool()
        if piccolo_conf.DB is self.engine and _STARTED:
            _bind(list(_STARTED.values())[-1].engine)

    @property
    def pool(self) -> asyncpg.Pool:
        """The asyncpg pool, for the few statements kept in plain SQL (each says why)."""
        pool = self.engine.pool
        if pool is None:
            raise RuntimeError("the database pool is not open")
        return pool

    @contextlib.asynccontextmanager
    async def transaction(self, isolation: Isolation | None = None) -> AsyncIterator[PostgresTransaction]:
        """A Piccolo transaction: the tables' queries inside the block run in it, on its one connection.

        A transaction opened inside another joins the outer one (Piccolo's nesting); `isolation`
        (PostgreSQL's default, read committed, if None) can only be chosen by the outermost, and asking
        for one inside another transaction raises rather than run at the outer level unnoticed. It yields
        Piccolo's transaction, whose `.connection` is the asyncpg connection for callees that
        still take one. Queries inside must not be gathered: one connection runs one at a time.
        """
        if isolation is not None and self.engine.current_transaction.get() is not None:
            raise RuntimeError(f"a {isolation} transaction cannot be nested in one that is already open")
        async with _Transaction(self.engine, isolation) as transaction:
            yield transaction

    async def ping(self) -> None:
        async with self.pool.acquire() as connection:
            await connection.fetchval("SELECT 1")  # a liveness probe that reads no table


class _Transaction(PostgresTransaction):
    """Piccolo's transaction at a chosen isolation level (its `engine.transaction()` takes none)."""

    def __init__(self, engine: PostgresEngine, isolation: Isolation | None) -> None:
        super().__init__(engine)
        self.isolation = isolation

    async def begin(self) -> None:
        self.transaction = self.connection.transaction(isolation=self.isolation)
        await self.transaction.start()


@contextlib.asynccontextmanager
async def advisory_locked(pool: asyncpg.Pool, key: str) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection holding the session-level advisory lock named `key` until the block ends.

    asyncpg resets a connection (`pg_advisory_unlock_all`) when it returns to the pool, so a
    cancelled caller cannot leave the lock held.
    """
    async with pool.acquire() as connection:
        # advisory locks have no Piccolo form, and this one must stay on the connection it yields
        await connection.execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", key)
        try:
            yield connection
        finally:
            await connection.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", key)  # as above


def _bind(engine: PostgresEngine) -> None:
    os.environ.setdefault("PICCOLO_CONF", "server.piccolo_conf")
    piccolo_conf.DB = engine
    tables: list[type[Table]] = [*all_tables(), Migration]
    for table in tables:
        table._meta.db = engine


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
    """Apply pending migrations under the advisory lock; return the ids applied by this call.

    Piccolo's runner finds the engine through `piccolo_conf`, so the tables are bound to this
    URL while it runs, then given back to the engine they had (a started `Database`, if any).
    """
    previous = piccolo_conf.DB
    lock = await asyncpg.connect(url)
    try:
        # a session-level advisory lock has no Piccolo form; it is held on this connection of its own
        await lock.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        Database(url).bind()
        before = await _applied()
        output = io.StringIO()
        with contextlib.redirect_stdout(output):  # Piccolo prints progress; we log it instead
            result = await run_forwards(app_name="roomcast")
        if not result.success:
            raise RuntimeError(f"migration failed: {result.message}")
        applied = sorted(set(await _applied()) - set(before))
        for migration_id in applied:
            log.info("db.migration.applied", extra={"migration": migration_id})
        return applied
    finally:
        if previous is not None:
            _bind(previous)
        with contextlib.suppress(Exception):
            await lock.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)  # see the lock above
        await lock.close()


async def _applied() -> list[str]:
    if not await Migration.table_exists():
        return []
    rows = await Migration.select(Migration.name).where(Migration.app_name == "roomcast")
    return [row["name"] for row in rows]
