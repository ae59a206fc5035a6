"""The SQLite store: migrations, WAL, and writes that never leak into another coroutine's transaction."""

from __future__ import annotations

import asyncio
from pathlib import Path

import anyio
import pytest

from mcp_server.store.sqlite import SqliteDatabase as Database


async def test_migrations_apply_once_and_wal_is_on(tmp_path: Path) -> None:
    first = await Database.open(tmp_path / "k.db")
    version = await first.schema_version()
    second = await Database.open(tmp_path / "k.db")  # a second process on the same data dir
    assert await second.schema_version() == version >= 2
    row = await first.fetch_one("PRAGMA journal_mode")
    assert row is not None and list(row.values()) == ["wal"]
    await first.close()
    await second.close()


async def test_a_write_does_not_join_a_transaction_that_rolls_back(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "k.db")
    await db.execute("CREATE TABLE t (v TEXT)")
    inside = asyncio.Event()

    async def failing_transaction() -> None:
        with pytest.raises(RuntimeError):
            async with db.transaction():
                await db.execute("INSERT INTO t VALUES ('rolled back')")
                inside.set()
                for _ in range(3):  # let the other writer try to run while this is open
                    await anyio.lowlevel.checkpoint()
                raise RuntimeError("abort")

    async def bystander() -> None:
        await inside.wait()
        await db.execute("INSERT INTO t VALUES ('kept')")

    await asyncio.gather(failing_transaction(), bystander())
    rows = await db.fetch_all("SELECT v FROM t")
    assert rows == [{"v": "kept"}]
    await db.close()


async def test_only_one_process_at_a_time_recovers_a_data_dir(tmp_path: Path) -> None:
    from mcp_server.app import open_services
    from mcp_server.config import Settings

    settings = Settings(data_dir=tmp_path, isolation="none")
    first = await open_services(settings)
    second = await open_services(settings)  # e.g. a kubegate stdio beside a running gateway
    assert first.recovers and not second.recovers
    assert first.parts.deployments.keeping and not second.parts.deployments.keeping
    await first.close()
    with anyio.fail_after(30):  # the lease passes to the process waiting for it: it keeps the deployments now
        while not second.parts.deployments.keeping:
            await anyio.sleep(0.01)
    await second.close()
    third = await open_services(settings)  # the lease is free again once its holder is gone
    assert third.recovers
    await third.close()


async def test_reads_see_what_is_committed_and_a_transaction_sees_its_own_writes(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "k.db")
    await db.execute("CREATE TABLE t (v TEXT)")
    written = asyncio.Event()
    seen_outside: list[list[dict[str, str]]] = []

    async def writer() -> None:
        async with db.transaction():
            await db.execute("INSERT INTO t VALUES ('new')")
            assert await db.fetch_all("SELECT v FROM t") == [{"v": "new"}]  # its own, uncommitted
            written.set()
            for _ in range(5):
                await anyio.lowlevel.checkpoint()

    async def reader() -> None:
        await written.wait()
        seen_outside.append(await db.fetch_all("SELECT v FROM t"))

    await asyncio.gather(writer(), reader())
    assert seen_outside == [[]]  # another coroutine never reads a transaction that may still roll back
    assert await db.fetch_all("SELECT v FROM t") == [{"v": "new"}]  # committed: visible at once
    await db.close()


async def test_a_read_that_meets_a_lock_is_retried_off_the_event_loop(tmp_path: Path) -> None:
    import sqlite3

    db = await Database.open(tmp_path / "k.db")
    await db.execute("CREATE TABLE t (v TEXT)")
    await db.execute("INSERT INTO t VALUES ('kept')")
    real_reader = db._reader
    tried: list[str] = []

    class BusyReader:
        """The loop-thread reader while another connection holds a lock it cannot pass."""

        def execute(self, sql: str, params: tuple[object, ...]) -> None:
            tried.append(sql)
            error = sqlite3.OperationalError("database is locked")
            error.sqlite_errorcode = sqlite3.SQLITE_BUSY
            raise error

    db._reader = BusyReader()  # type: ignore[assignment]
    assert await db.fetch_all("SELECT v FROM t") == [{"v": "kept"}]  # answered by the aiosqlite connection
    assert tried == ["SELECT v FROM t"]
    with pytest.raises(sqlite3.OperationalError, match="no such table"):  # other errors are not swallowed
        db._reader = real_reader
        await db.fetch_all("SELECT v FROM missing")
    await db.close()
