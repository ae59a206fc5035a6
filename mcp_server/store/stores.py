"""Every repository over one database: what the composition root opens and hands out.

This is the seam for a second backend: ``open_stores`` picks the database (SQLite in the data
dir today), and nothing above ``store`` sees more than these repositories.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mcp_server.store.api_keys import ApiKeyStore
from mcp_server.store.audit import AuditStore
from mcp_server.store.changes import StoreChanges
from mcp_server.store.db import Database
from mcp_server.store.run_queue import RunQueue
from mcp_server.store.sandboxes import SandboxRepository
from mcp_server.store.sessions import SessionRepository
from mcp_server.store.tasks import TaskStore
from mcp_server.store.templates import TemplateStore
from mcp_server.store.users import UserStore
from mcp_server.store.workflows import WorkflowStore


@dataclass(frozen=True, slots=True)
class Stores:
    users: UserStore
    api_keys: ApiKeyStore
    sessions: SessionRepository
    audit: AuditStore
    tasks: TaskStore
    workflows: WorkflowStore
    templates: TemplateStore
    run_queue: RunQueue
    sandboxes: SandboxRepository
    _db: Database

    async def ping(self) -> None:
        """Raise unless the database answers."""
        await self._db.fetch_one("SELECT 1")

    @property
    def changes(self) -> StoreChanges:
        """Told when another process changed the store (``store.changes``)."""
        return self._db.changes

    async def schema_version(self) -> int:
        return await self._db.schema_version()

    async def close(self) -> None:
        await self._db.close()


async def open_stores(db_path: Path) -> Stores:
    """Open the database (applying migrations) and its repositories."""
    db = await Database.open(db_path)
    return Stores(users=UserStore(db), api_keys=ApiKeyStore(db), sessions=SessionRepository(db),
                  audit=AuditStore(db), tasks=TaskStore(db), workflows=WorkflowStore(db), run_queue=RunQueue(db),
                  sandboxes=SandboxRepository(db), templates=TemplateStore(db), _db=db)
