"""The PostgreSQL connections a gateway's statements take turns on: a thin LIFO over psycopg's pool.

Each REST request makes one or two statements, and ``psycopg_pool`` charged as much Python CPU per
checkout as the statement itself once more requests were in flight than it had connections: each
wait is a timed condition with a task of its own. Here a statement done with a connection hands
it straight to the next waiter (a future) or parks it, most recent first, so under load a
checkout is a list pop. The pool still makes every connection (with its reconnect and backoff)
and takes back any that ended broken or mid-transaction, which it discards; this class never
holds more than the pool's ``max_size``, so the pool itself never queues.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import pq
from psycopg_pool import AsyncConnectionPool, PoolTimeout

Connection = psycopg.AsyncConnection[dict[str, Any]]

CHECKOUT_TIMEOUT = 30.0
"""As ``psycopg_pool``'s default: how long a statement waits for a connection before it fails."""


class Connections:
    def __init__(self, pool: AsyncConnectionPool[Connection]) -> None:
        self.pool = pool
        self._idle: list[Connection] = []
        self._waiters: deque[asyncio.Future[Connection | None]] = deque()
        self._out = 0
        """Connections taken from the pool and not given back: parked, in use, or on their way to a waiter."""

    async def acquire(self) -> Connection:
        while True:
            if self._idle:
                return self._idle.pop()
            if self._out < self.pool.max_size:
                self._out += 1
                try:
                    return await self.pool.getconn()
                except BaseException:
                    self._out -= 1
                    self._wake(None)
                    raise
            waiter: asyncio.Future[Connection | None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                conn = await asyncio.wait_for(waiter, CHECKOUT_TIMEOUT)
            except BaseException as exc:
                if waiter.done() and not waiter.cancelled():  # handed over just as the caller gave up: pass it on
                    got = waiter.result()
                    await self.release(got) if got is not None else self._wake(None)
                if isinstance(exc, TimeoutError):
                    raise PoolTimeout(f"no PostgreSQL connection free within {CHECKOUT_TIMEOUT:g}s") from None
                raise
            if conn is not None:
                return conn  # else a slot in the pool came free: go round and take it

    async def release(self, conn: Connection) -> None:
        if conn.closed or conn.broken or conn.info.transaction_status != pq.TransactionStatus.IDLE:
            self._out -= 1
            await self.pool.putconn(conn)  # the pool discards or resets it
            self._wake(None)
            return
        if not self._wake(conn):
            self._idle.append(conn)

    def _wake(self, conn: Connection | None) -> bool:
        """Hand ``conn`` (or, with None, a free slot) to the oldest caller still waiting; False if none."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return True
        return False

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        conn = await self.acquire()
        try:
            yield conn
        finally:
            await self.release(conn)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            self._out -= 1
            await self.pool.putconn(conn)
        await self.pool.close()
