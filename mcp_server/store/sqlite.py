"""The SQLite backend (the default): one aiosqlite connection in WAL mode, versioned migrations applied at open.

Several gateway processes may share a data dir: WAL lets readers run beside the one writer,
``busy_timeout`` makes a writer wait for another's transaction instead of failing, and
migrations run under ``BEGIN IMMEDIATE`` so two processes starting together apply each
version exactly once.

Reads outside a transaction go to a second, query-only connection used on the event loop's own
thread. They are indexed lookups and bounded pages that take microseconds, and a WAL reader
never waits for a writer, whereas a hop to aiosqlite's thread and back costs two thread
switches and a wait for the GIL: on the request path (key lookup, then the tool's read) that
hop was the largest cost kubegate added over a bare MCP server (``bench/mcp_overhead.py``).
Each read statement sees the last committed state, so a write that has returned is visible to
the next read. Inside a transaction reads stay on the writing connection, which sees its
own uncommitted changes. Should the reader ever meet a lock (a checkpoint resetting the WAL),
it gives up at once and the read takes the aiosqlite path, which may wait without blocking
the loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import aiosqlite

from mcp_server.store.changes import SqliteWatch, StoreChanges
from mcp_server.store.db import MIGRATIONS_TABLE, IntegrityError, migrations, statements

_TRANSACTION: ContextVar[SqliteDatabase | None] = ContextVar("kubegate_transaction", default=None)
"""The database whose transaction the current task holds, if any."""


class SqliteDatabase:
    """A thin async wrapper: parameterised queries, rows as dicts, explicit transactions."""

    dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection, reader: sqlite3.Connection | None = None) -> None:
        self._conn = conn
        self._reader = reader
        # One connection is shared by every coroutine: a second BEGIN while one is open would fail.
        self._tx_lock = asyncio.Lock()
        self.changes = StoreChanges()
        """Fed when another process commits to this database (see ``store.changes``)."""
        self._watch: SqliteWatch | None = None
        self._data_version: int | None = None

    @classmethod
    async def open(cls, path: Path) -> SqliteDatabase:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(path, isolation_level=None)
        conn.row_factory = aiosqlite.Row
        try:
            await conn.execute("PRAGMA busy_timeout=10000")
            await _use_wal(conn)
            for pragma in ("foreign_keys=ON", "synchronous=NORMAL"):
                await conn.execute(f"PRAGMA {pragma}")
        except BaseException:
            await conn.close()  # else its worker thread outlives the loop that awaits it
            raise
        db = cls(conn)
        await db._migrate()
        db._reader = _open_reader(path)
        await db.foreign_commit()  # the baseline
        db._watch = SqliteWatch(path, db.changes, db.foreign_commit)
        db._watch.start()
        return db

    async def foreign_commit(self) -> bool:
        """Whether another connection (another process) committed since the last call.

        ``PRAGMA data_version`` on the writing connection changes only with commits made elsewhere.
        """
        async with self._tx_lock:
            rows = await self._conn.execute_fetchall("PRAGMA data_version")
        version = int(next(iter(rows))[0])
        changed, self._data_version = self._data_version is not None and version != self._data_version, version
        return changed

    async def announce(self) -> None:
        """Nothing to send: other processes' ``SqliteWatch`` sees the commit itself."""

    async def close(self) -> None:
        if self._watch is not None:
            await self._watch.close()
            self._watch = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        await self._conn.close()

    async def _migrate(self) -> None:
        async with self.transaction():
            await self._conn.execute(MIGRATIONS_TABLE)
            rows = await self._conn.execute_fetchall("SELECT version FROM schema_migrations")
            applied = {int(row[0]) for row in rows}
            for version, sql in migrations():
                if version not in applied:  # a lower number merged late still applies
                    for statement in statements(sql):
                        await self._conn.execute(statement)
                    await self._conn.execute("INSERT INTO schema_migrations(version) VALUES (?)", (version,))

    async def schema_version(self) -> int:
        row = await self.fetch_one("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations")
        return int(row["v"]) if row else 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        if _TRANSACTION.get() is self:  # nested: part of the transaction already open
            yield
            return
        async with self._tx_lock:
            token = _TRANSACTION.set(self)
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield
                except BaseException:
                    await self._conn.execute("ROLLBACK")
                    raise
                await self._conn.execute("COMMIT")
            finally:
                _TRANSACTION.reset(token)

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one statement; returns the number of rows changed.

        Outside a transaction of its own, a write waits for any open transaction to end: on the
        shared connection it would otherwise join that transaction and vanish with a rollback.
        """
        try:
            if _TRANSACTION.get() is self:
                cur = await self._conn.execute(sql, tuple(params))
                return cur.rowcount
            async with self._tx_lock:
                cur = await self._conn.execute(sql, tuple(params))
                return cur.rowcount
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc

    async def fetch_one(self, sql: str, params: Iterable[Any] = ()) -> dict[str, Any] | None:
        rows = await self.fetch_all(sql, params)
        return rows[0] if rows else None

    async def fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        args = tuple(params)
        if self._reader is not None and _TRANSACTION.get() is not self:
            try:
                return [dict(row) for row in self._reader.execute(sql, args).fetchall()]
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF not in _LOCKED:  # primary code: BUSY_SNAPSHOT etc. too
                    raise
        # One hop to the connection's thread instead of two (execute, then fetch).
        rows = await self._conn.execute_fetchall(sql, args)
        return [dict(row) for row in rows]


_LOCKED = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


async def _use_wal(conn: aiosqlite.Connection) -> None:
    """Switch to WAL, which persists in the file; again while another opener of a new database is switching it.

    The switch takes an exclusive lock from a shared one, and when two connections both hold the shared
    lock SQLite answers one of them ``database is locked`` at once, without its busy handler, rather than
    deadlock (seen in CI with four gateways opening one new file). The other finishes the switch, after
    which this one is a no-op.
    """
    for attempt in range(200):
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 199:
                raise
        await asyncio.sleep(0.01)


def _open_reader(path: Path) -> sqlite3.Connection:
    """The loop thread's read connection: query-only, and never waits for a lock (see above)."""
    reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    reader.row_factory = sqlite3.Row
    for pragma in ("query_only=ON", "busy_timeout=0", "foreign_keys=ON"):
        reader.execute(f"PRAGMA {pragma}")
    return reader

