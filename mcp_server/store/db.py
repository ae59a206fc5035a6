"""What every repository sees of a database, whichever backend answers: SQLite or PostgreSQL.

Repositories write one SQL text for both: ``?`` placeholders, ``TEXT``/``INTEGER``/``REAL``
columns, ISO-8601 timestamps as text, ``ON CONFLICT ... DO NOTHING``, no backend-only
functions. The few differences (placeholders, column types in migrations) are translated in
one place, ``store.dialect``. Migrations are versioned files applied once under a lock that
holds across processes (``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL), so
any number of replicas may start together on an empty database.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from importlib import resources
from typing import Any, Protocol

from mcp_server.store.changes import StoreChanges

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class IntegrityError(Exception):
    """A write broke a constraint (a unique key, say); raised the same by every backend."""


class Database(Protocol):
    """Parameterised queries, rows as dicts, explicit transactions.

    A transaction is exclusive among writers of the same store, on every backend (SQLite's
    ``BEGIN IMMEDIATE``, a transaction-level advisory lock on PostgreSQL), so a check followed by a
    write inside one (a quota, a version number) holds however many replicas write at once.
    """

    dialect: str
    changes: StoreChanges
    """Told when another process changed the store, where the backend can tell (``store.changes``)."""

    def transaction(self) -> AbstractAsyncContextManager[None]: ...

    async def announce(self) -> None:
        """Tell the other processes on this store that something they act on changed (a key revoked, a
        session ended, a deployment to apply), where they would not see it by themselves; a no-op on
        SQLite, whose watch sees every commit."""

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one statement; returns the number of rows changed."""
        ...

    async def fetch_one(self, sql: str, params: Iterable[Any] = ()) -> dict[str, Any] | None: ...

    async def fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]: ...

    async def schema_version(self) -> int: ...

    async def close(self) -> None: ...


def migrations() -> list[tuple[int, str]]:
    """Every ``NNNN_name.sql`` in ``store/migrations``, in version order."""
    found = []
    for entry in resources.files("mcp_server.store").joinpath("migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text()))
    return sorted(found)


def statements(sql: str) -> list[str]:
    """The statements of a migration file, comment lines dropped."""
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [stmt.strip() for stmt in "\n".join(lines).split(";") if stmt.strip()]


MIGRATIONS_TABLE = "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)"
