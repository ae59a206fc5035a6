"""The store's change signal: another process's commit is an event; our own writes are not."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import anyio

from mcp_server.auth.revocation import RECHECK_SECONDS, Revocations
from mcp_server.store.changes import StoreChanges
from mcp_server.store.sqlite import SqliteDatabase


async def test_a_commit_by_another_process_is_signalled_and_our_own_writes_are_not(tmp_path: Path) -> None:
    db = await SqliteDatabase.open(tmp_path / "kubegate.db")
    signalled = asyncio.Event()
    db.changes.listen(signalled.set)
    try:
        assert db.changes.live  # inotify is there on Linux
        await db.execute("CREATE TABLE probe (x INTEGER)")
        await db.execute("INSERT INTO probe VALUES (1)")
        # Our own writes touch the WAL too; the check that follows them must stay silent.
        with anyio.move_on_after(1):
            await signalled.wait()
        assert not signalled.is_set()
        code = ("import sqlite3, sys; "
                "sqlite3.connect(sys.argv[1], isolation_level=None).execute('INSERT INTO probe VALUES (2)')")
        subprocess.run([sys.executable, "-c", code, str(tmp_path / "kubegate.db")], check=True, timeout=60)
        with anyio.fail_after(30):
            await signalled.wait()
    finally:
        await db.close()


async def test_waits_recheck_rarely_only_while_the_store_delivers_changes() -> None:
    revocations, changes = Revocations(), StoreChanges()
    revocations.follow(changes, backstop_seconds=3600)
    assert revocations.recheck_seconds == RECHECK_SECONDS  # no events: the periodic recheck is all there is
    changes.live = True
    assert revocations.recheck_seconds == 3600
    woken = asyncio.create_task(revocations.next())
    await asyncio.sleep(0)
    changes.changed()  # another process changed the store: every wait rechecks now
    with anyio.fail_after(5):
        await woken
