"""The SQLite store: migrations, WAL, and writes that never leak into another coroutine's transaction."""

from __future__ import annotations

import asyncio
from pathlib import Path

import anyio
import pytest

from mcp_server.store.db import Database


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
    from mcp_server.config import Settings
    from mcp_server.services import Services

    settings = Settings(data_dir=tmp_path, isolation="none")
    first = await Services.open(settings)
    second = await Services.open(settings)  # e.g. a kubegate stdio beside a running gateway
    assert first.recovers and not second.recovers
    await first.close()
    await second.close()
    third = await Services.open(settings)  # the lease is free again once its holder is gone
    assert third.recovers
    await third.close()
