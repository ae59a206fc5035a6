"""The PostgreSQL connections statements take turns on: many more statements than connections all
complete, the server never sees more than the cap, and a connection the server killed is replaced."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from mcp_server.store.postgres import PostgresDatabase
from tests.pg import PgCluster


@pytest.fixture
async def db(pg_cluster: PgCluster) -> PostgresDatabase:
    return await PostgresDatabase.open(pg_cluster.create_database(), max_size=3)


async def _backends(db: PostgresDatabase) -> int:
    row = await db.fetch_one("SELECT COUNT(*) AS n FROM pg_stat_activity WHERE datname = current_database() "
                             "AND backend_type = 'client backend' AND query NOT ILIKE 'LISTEN%'")
    assert row is not None
    return int(row["n"])


async def test_forty_statements_at_once_share_three_connections_and_all_answer(db: PostgresDatabase) -> None:
    seen: list[int] = []

    async def one(n: int) -> int:
        row = await db.fetch_one("SELECT ? AS n, pg_sleep(0.02) AS s", (n,))
        seen.append(await _backends(db))
        assert row is not None
        return int(row["n"])

    try:
        assert await asyncio.gather(*(one(n) for n in range(40))) == list(range(40))
        assert max(seen) <= 3  # the cap holds: the rest waited for a connection, none was refused
    finally:
        await db.close()


async def test_a_statement_cancelled_while_waiting_loses_no_connection(db: PostgresDatabase) -> None:
    try:
        busy = [asyncio.ensure_future(db.fetch_one("SELECT pg_sleep(0.3) AS s")) for _ in range(3)]
        waiting = asyncio.ensure_future(db.fetch_one("SELECT 1 AS n"))
        await asyncio.sleep(0.05)
        waiting.cancel()  # a client that went away while its request queued
        await asyncio.gather(*busy)
        rows = await asyncio.gather(*(db.fetch_one("SELECT 2 AS n") for _ in range(6)))
        assert [r["n"] for r in rows if r] == [2] * 6  # all three connections came back
    finally:
        await db.close()


async def test_a_connection_the_server_ended_is_dropped_and_the_next_statement_works(
        db: PostgresDatabase, pg_cluster: PgCluster) -> None:
    try:
        await db.fetch_one("SELECT 1 AS n")
        with psycopg.connect(pg_cluster.url(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() "
                          "AND query NOT ILIKE 'LISTEN%'")
        with pytest.raises(psycopg.OperationalError):
            await db.fetch_one("SELECT 1 AS n")  # the parked connection was dead: this statement fails
        for _ in range(4):
            row = await db.fetch_one("SELECT 3 AS n")
            assert row is not None and row["n"] == 3
    finally:
        await db.close()
