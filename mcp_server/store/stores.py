"""Every repository over one database: what the composition root opens and hands out.

This is the seam between backends: ``open_stores`` picks the database (SQLite in the data dir by
default, PostgreSQL when a ``postgresql://`` URL is given), and nothing above ``store`` sees more
than these repositories.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mcp_server.store.api_keys import ApiKeyStore
from mcp_server.store.audit import AuditStore
from mcp_server.store.changes import StoreChanges
from mcp_server.store.db import Database
from mcp_server.store.deployments import DeploymentRepository
from mcp_server.store.run_queue import RunQueue
from mcp_server.store.sandboxes import SandboxRepository
from mcp_server.store.sessions import SessionRepository
from mcp_server.store.sqlite import SqliteDatabase
from mcp_server.store.tasks import TaskStore
from mcp_server.store.templates import TemplateStore
from mcp_server.store.users import UserStore
from mcp_server.store.workflows import WorkflowStore

if TYPE_CHECKING:
    from mcp_server.store.coordination import PgCoordination


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
    deployments: DeploymentRepository
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

    def coordination(self) -> PgCoordination | None:
        """Leadership and notices between replicas sharing this store; None on SQLite (one host, ``engine.lock``)."""
        if self._db.dialect != "postgresql":
            return None
        from mcp_server.store.coordination import PgCoordination
        from mcp_server.store.postgres import PostgresDatabase

        assert isinstance(self._db, PostgresDatabase)
        return PgCoordination(self._db)

    @property
    def database(self) -> Database:
        """The database itself, for what spans repositories (leadership, change notices)."""
        return self._db


async def open_database(db_path: Path, url: str | None = None) -> Database:
    """PostgreSQL at ``url`` when given, else the SQLite file at ``db_path``; migrations applied."""
    if url:
        from mcp_server.store.postgres import PostgresDatabase  # psycopg only when PostgreSQL is used

        return await PostgresDatabase.open(url)
    return await SqliteDatabase.open(db_path)


async def open_stores(db_path: Path, url: str | None = None) -> Stores:
    """Open the database (applying migrations) and its repositories."""
    db = await open_database(db_path, url)
    return Stores(users=UserStore(db), api_keys=ApiKeyStore(db), sessions=SessionRepository(db),
                  audit=AuditStore(db), tasks=TaskStore(db), workflows=WorkflowStore(db), run_queue=RunQueue(db),
                  sandboxes=SandboxRepository(db), templates=TemplateStore(db),
                  deployments=DeploymentRepository(db), _db=db)
