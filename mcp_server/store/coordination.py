"""Replicas on one PostgreSQL database: who leads the engine, and notices between replicas.

Leadership is a session-level advisory lock held on a connection of its own. A follower waits
for it inside ``pg_advisory_lock`` (a blocked query, not a polling loop); the server releases it
the moment the leader's session ends, so a killed leader's socket closing hands the lock on at
once. The leader watches its connection: when it breaks (the server restarted, the network
dropped), ``Lease.lost`` is set and the leader must stop acting, since the server may already
have given the lock to another replica. TCP keepalives on both ends bound how long a silent
partition goes unnoticed: about ``KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_COUNT`` seconds.

Notices travel by ``LISTEN``/``NOTIFY``: a replica's ``Channel`` listens on a connection of its
own and reconnects if it drops, calling ``on_connect`` each time so its owner can catch up on
whatever it may have missed (the notices only say "look", the store holds the truth).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

from mcp_server.store.postgres import PostgresDatabase

log = logging.getLogger(__name__)

LEADER_LOCK = 0x6B67_0003
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 4, 2, 2
_CLIENT_KEEPALIVE: dict[str, Any] = {"keepalives": 1, "keepalives_idle": KEEPALIVE_IDLE,
                                     "keepalives_interval": KEEPALIVE_INTERVAL, "keepalives_count": KEEPALIVE_COUNT}
_SERVER_KEEPALIVE = (f"SET tcp_keepalives_idle = {KEEPALIVE_IDLE}",
                     f"SET tcp_keepalives_interval = {KEEPALIVE_INTERVAL}",
                     f"SET tcp_keepalives_count = {KEEPALIVE_COUNT}")


async def _connect(url: str) -> psycopg.AsyncConnection[Any]:
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True, **_CLIENT_KEEPALIVE)
    for statement in _SERVER_KEEPALIVE:  # the server's side of the same bound (no effect on a unix socket)
        await conn.execute(statement)
    return conn


class Lease:
    """Leadership while held; ``lost`` is set the moment the connection that holds it breaks."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn
        self.lost = asyncio.Event()
        self._watch = asyncio.create_task(self._watch_connection(), name="kubegate-lease")

    async def _watch_connection(self) -> None:
        try:
            async for _ in self._conn.notifies():  # idles on the socket; ends or raises when it breaks
                pass
        except Exception as exc:
            log.error("the leader lock's connection broke (%s): leadership is lost", type(exc).__name__)
        finally:
            self.lost.set()

    async def release(self) -> None:
        self._watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._watch
        await self._conn.close()  # the session ends, and the lock with it


class Channel:
    """``LISTEN`` on some channels for this replica's life; ``send`` is ``NOTIFY`` through the pool."""

    def __init__(self, db: PostgresDatabase, channels: tuple[str, ...]) -> None:
        self._db = db
        self._channels = channels

    async def send(self, channel: str, payload: str) -> None:
        await self._db.fetch_one("SELECT pg_notify(?, ?)", (channel, payload))

    async def listen(self, on_message: Callable[[str, str], None],
                     on_connect: Callable[[], Awaitable[None]]) -> None:
        """Deliver every notice until cancelled, reconnecting (with a bounded backoff) when the connection drops."""
        backoff = 0.5
        while True:
            try:
                conn = await _connect(self._db.url)
                try:
                    for channel in self._channels:
                        await conn.execute(f"LISTEN {channel}")
                    backoff = 0.5
                    await on_connect()
                    async for notice in conn.notifies():
                        on_message(notice.channel, notice.payload)
                finally:
                    await conn.close()
            except Exception as exc:  # the connection, or catching up after it: either way, listen again
                log.warning("LISTEN connection lost (%s); reconnecting in %.1fs", type(exc).__name__, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)


class PgCoordination:
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def lead(self) -> Lease:
        """Wait, without polling, until this replica holds the leader lock."""
        conn = await _connect(self._db.url)
        try:
            await conn.execute("SELECT pg_advisory_lock(%s)", (LEADER_LOCK,))
        except BaseException:
            await conn.close()
            raise
        return Lease(conn)

    def channel(self, *channels: str) -> Channel:
        return Channel(self._db, channels)
