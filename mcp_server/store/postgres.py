"""The PostgreSQL backend (``KUBEGATE_DATABASE_URL=postgresql://...``): psycopg 3 async with its pool.

Several gateway replicas share one database. Each statement outside a transaction takes a
connection (``store.pgconns``) in autocommit mode, so a write that has returned is visible to the next
read on any replica. A transaction holds one connection and first takes a transaction-level
advisory lock, which makes write transactions exclusive as ``BEGIN IMMEDIATE`` does on SQLite:
repositories check-then-write inside one (quotas, template versions) and that must hold across
replicas, not only inside one process. Migrations run under a session-level advisory lock, so
replicas starting together on an empty database apply each version exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from mcp_server.store.changes import StoreChanges
from mcp_server.store.db import MIGRATIONS_TABLE, IntegrityError, migrations, statements
from mcp_server.store.dialect import postgres_ddl, postgres_query
from mcp_server.store.pgconns import Connection, Connections

log = logging.getLogger(__name__)

CHANGES_CHANNEL = "kubegate_store"
"""``NOTIFY`` channel of ``announce``: its payload is the announcing process's token, so it can skip its own."""

MIGRATION_LOCK = 0x6B67_0001
"""Advisory lock keys: one namespace of ours ("kg"), so a shared database's other users can pick others."""
WRITE_LOCK = 0x6B67_0002

_TRANSACTION: ContextVar[tuple[PostgresDatabase, Connection] | None] = ContextVar(
    "kubegate_pg_transaction", default=None)


def _param(value: Any) -> Any:
    # Flags are INTEGER columns (the portable type); psycopg would send a bool as boolean.
    return int(value) if isinstance(value, bool) else value


class PostgresDatabase:
    dialect = "postgresql"

    def __init__(self, pool: AsyncConnectionPool[Connection], url: str) -> None:
        self._conns = Connections(pool)
        self.url = url
        """For connections of their own (the leader's lock, LISTEN); never logged: it may hold a password."""
        self.changes = StoreChanges()
        """Fed by a ``LISTEN`` on ``CHANGES_CHANNEL`` (``_listen``); ``live`` while that connection is up."""
        self._token = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._listener: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, url: str, *, max_size: int = 10) -> PostgresDatabase:
        pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            url, min_size=1, max_size=max_size, open=False, name="kubegate",
            kwargs={"autocommit": True, "row_factory": dict_row}, connection_class=psycopg.AsyncConnection,
        )
        await pool.open(wait=True, timeout=30)
        db = cls(pool, url)
        try:
            await db._migrate()
        except BaseException:
            await pool.close()
            raise
        db._listener = asyncio.create_task(db._listen(), name="kubegate-store-changes")
        return db

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        await self._conns.close()

    async def announce(self) -> None:
        await self.fetch_one("SELECT pg_notify(?, ?)", (CHANGES_CHANNEL, self._token))

    async def _listen(self) -> None:
        """Call ``changes.changed()`` for every other process's ``announce``, reconnecting when the connection drops.

        After a reconnect the listeners are told once anyway: an announcement may have been missed meanwhile.
        """
        backoff, reconnect = 0.5, False
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANGES_CHANNEL}")
                    if reconnect:
                        self.changes.changed()
                    self.changes.live, backoff, reconnect = True, 0.5, True
                    async for notice in conn.notifies():
                        if notice.payload != self._token:
                            self.changes.changed()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the server restarted, the network dropped: rechecks cover the gap
                log.warning("store change LISTEN lost (%s); reconnecting in %.1fs", type(exc).__name__, backoff)
            self.changes.live = False
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _migrate(self) -> None:
        async with self._conns.connection() as conn:
            await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
            try:
                async with conn.transaction():
                    await conn.execute(postgres_ddl(MIGRATIONS_TABLE))
                    cur = await conn.execute("SELECT version FROM schema_migrations")
                    applied = {int(row["version"]) for row in await cur.fetchall()}
                    for version, sql in migrations():
                        if version not in applied:
                            for statement in statements(sql):
                                await conn.execute(postgres_ddl(statement))
                            await conn.execute("INSERT INTO schema_migrations(version) VALUES (%s)", (version,))
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))

    async def schema_version(self) -> int:
        row = await self.fetch_one("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations")
        return int(row["v"]) if row else 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        held = _TRANSACTION.get()
        if held is not None and held[0] is self:  # nested: part of the transaction already open
            yield
            return
        async with self._conns.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            token = _TRANSACTION.set((self, conn))
            try:
                yield
            finally:
                _TRANSACTION.reset(token)

    def _held(self) -> Connection | None:
        """The connection of the transaction this task is inside, if any."""
        held = _TRANSACTION.get()
        return held[1] if held is not None and held[0] is self else None

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        held = self._held()
        conn = held or await self._conns.acquire()
        try:
            cur = await conn.execute(postgres_query(sql), [_param(p) for p in params])
            return cur.rowcount
        except psycopg.errors.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc
        finally:
            if held is None:
                await self._conns.release(conn)

    async def fetch_one(self, sql: str, params: Iterable[Any] = ()) -> dict[str, Any] | None:
        rows = await self.fetch_all(sql, params)
        return rows[0] if rows else None

    async def fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        held = self._held()
        conn = held or await self._conns.acquire()
        try:
            cur = await conn.execute(postgres_query(sql), [_param(p) for p in params])
            return await cur.fetchall() if cur.description is not None else []
        finally:
            if held is None:
                await self._conns.release(conn)
