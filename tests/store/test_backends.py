"""What both backends must do alike: migrate once however many open together, keep a quota checked
inside a transaction exact across processes, page with cursors, and raise the same errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mcp_server.errors import Conflict, Forbidden
from mcp_server.ids import stamp
from mcp_server.store.audit import AuditEntry
from mcp_server.store.db import IntegrityError, migrations
from mcp_server.store.sandboxes import SandboxRecord
from mcp_server.store.stores import Stores, open_database, open_stores


async def test_replicas_opening_an_empty_database_together_migrate_it_once(tmp_path: Path,
                                                                           database_url: str | None) -> None:
    # Twelve: on SQLite two of them switching a new file to WAL at once is the race to survive.
    opened = await asyncio.gather(*(open_database(tmp_path / "k.db", database_url) for _ in range(12)))
    latest = migrations()[-1][0]
    for db in opened:
        assert await db.schema_version() == latest
    rows = await opened[0].fetch_all("SELECT version FROM schema_migrations ORDER BY version")
    assert [r["version"] for r in rows] == [v for v, _ in migrations()]  # each version recorded exactly once
    for db in opened:
        await db.close()


def _sandbox(user: str, name: str, n: int) -> SandboxRecord:
    return SandboxRecord(id=f"sbx_{n}", user_id=user, name=name, host_label=f"h{n}", image="alpine", size="small",
                         network=False, env_keys=("A",), password_hash="x", status="provisioning", reason=None,
                         message=None, timeout_seconds=1.5, created_at=stamp(), started_at=None,
                         expires_at=stamp(), ended_at=None)


async def test_a_quota_checked_in_a_transaction_holds_across_processes(tmp_path: Path,
                                                                       database_url: str | None) -> None:
    replicas = [await open_stores(tmp_path / "k.db", database_url) for _ in range(3)]
    user = (await replicas[0].users.ensure("q@example.test")).id
    results = await asyncio.gather(*(r.sandboxes.insert(_sandbox(user, f"s{i}", i), max_live=2)
                                     for i, r in enumerate(replicas * 2)), return_exceptions=True)
    assert sum(r is None for r in results) == 2 and all(isinstance(r, Forbidden) for r in results if r is not None)
    assert await replicas[0].sandboxes.count_live(user) == 2
    for r in replicas:
        await r.close()


async def test_a_clash_is_the_same_error_on_every_backend(stores: Stores) -> None:
    user = (await stores.users.ensure("c@example.test")).id
    await stores.sandboxes.insert(_sandbox(user, "same", 1), max_live=5)
    with pytest.raises(Conflict, match="already have a live sandbox named 'same'"):
        await stores.sandboxes.insert(_sandbox(user, "same", 2), max_live=5)
    stored = await stores.sandboxes.get(user, "sbx_1")
    assert stored is not None and stored.timeout_seconds == 1.5 and stored.network is False
    with pytest.raises(IntegrityError):
        await stores.users.ensure("c@example.test")  # harmless: ON CONFLICT DO NOTHING
        await stores.database.execute("INSERT INTO users(id, email, created_at) VALUES (?, ?, ?)",
                                      ("user_x", "c@example.test", stamp()))


async def test_audit_pages_walk_every_row_once_newest_first(stores: Stores) -> None:
    for i in range(7):
        await stores.audit.add(AuditEntry(user_id="u1", email="a@b", auth_method="api_key", method="POST",
                                          path=f"/p/{i}%_'?", action=None, status=200, client_ip=None))
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page, cursor = await stores.audit.page(limit=3, cursor=cursor, user_id="u1")
        seen.extend(r.entry.path for r in page)
        if cursor is None:
            break
    assert seen == [f"/p/{i}%_'?" for i in reversed(range(7))]  # literal % ' ? pass through untouched
    assert await stores.audit.page(limit=3, cursor=None, user_id="someone else") == ([], None)


async def test_an_empty_page_of_workflows_counts_nothing(stores: Stores) -> None:
    user = (await stores.users.ensure("w@example.test")).id
    assert await stores.workflows.page(user, None, 10, None) == ([], None)
