"""The store's change signal: another process's commit is an event; our own writes are not."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from mcp_server.auth.revocation import RECHECK_SECONDS, Revocations
from mcp_server.store.api_keys import NewApiKeyRow
from mcp_server.store.changes import StoreChanges
from mcp_server.store.sqlite import SqliteDatabase
from mcp_server.store.stores import open_stores


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


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_revocation_on_another_postgresql_client_is_signalled_and_our_own_is_not(
        tmp_path: Path, database_url: str | None) -> None:
    assert database_url is not None
    here, there = await open_stores(tmp_path / "unused.db", database_url), await open_stores(tmp_path / "unused.db",
                                                                                             database_url)
    heard_here, heard_there = asyncio.Event(), asyncio.Event()
    here.changes.listen(heard_here.set)
    there.changes.listen(heard_there.set)
    try:
        with anyio.fail_after(30):
            while not (here.changes.live and there.changes.live):  # both LISTENs are up
                await anyio.sleep(0.01)
        user = await here.users.ensure("alice@example.com")
        now = datetime.now(UTC).isoformat()
        for key_id in ("key_parent", "key_child"):
            await here.api_keys.insert(NewApiKeyRow(
                id=key_id, user_id=user.id, name=key_id, prefix="sk_live_abcd", key_hash=f"hash-{key_id}",
                scopes=("api-keys:read",), created_at=now, expires_at=None,
                parent_id="key_parent" if key_id == "key_child" else None))
        assert not heard_there.is_set()  # creating keys revokes nothing: no announcement
        assert await here.api_keys.revoke_lineage(user.id, "key_parent", now) == 2
        with anyio.fail_after(30):
            await heard_there.wait()
        with anyio.move_on_after(1):  # our own announcement comes back to us too, and is skipped
            await heard_here.wait()
        assert not heard_here.is_set()
    finally:
        await here.close()
        await there.close()
