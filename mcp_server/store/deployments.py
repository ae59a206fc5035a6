"""Deployments in the store: frozen records in and out; the only SQL about deployments.

Every write that the keeper must act on (a new row, a changed spec, a delete) is announced after
its commit (``Database.announce``: ``NOTIFY`` on PostgreSQL; on SQLite the keeper hears any other
process's commit by itself), so the process that keeps the apps applies it at once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from mcp_server.errors import Forbidden
from mcp_server.store.db import Database
from mcp_server.store.rows import Row, insert
from mcp_server.store.templates import EnvVar


@dataclass(frozen=True, slots=True)
class ReplicaRecord:
    """One replica as the runtime last reported it (``started``: RFC 3339, None while not running)."""

    replica: str
    revision: int
    ready: bool
    restarts: int
    started: str | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class DeploymentRecord:
    name: str
    user_id: str
    template: str | None
    template_version: int | None
    image: str
    port: int
    command: tuple[str, ...] | None
    health_path: str
    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str
    replicas: int
    visibility: str
    revision: int
    status: str
    ready_replicas: int
    last_error: str | None
    created_at: str
    updated_at: str
    network: bool = False
    env: tuple[EnvVar, ...] = ()
    replica_status: tuple[ReplicaRecord, ...] = ()


_COLUMNS = tuple(f.name for f in fields(DeploymentRecord) if f.name not in ("env", "replica_status"))
_NOT_UPDATED = ("name", "user_id", "replicas", "status", "ready_replicas", "last_error", "created_at")
"""Columns an update never writes: who owns it, its scale (``scale``: the two commute), what the keeper observed."""


def _row(record: DeploymentRecord) -> dict[str, Any]:
    row = {c: getattr(record, c) for c in _COLUMNS}
    row["command"] = json.dumps(list(record.command)) if record.command is not None else None
    row["network"] = int(record.network)
    return row


class DeploymentRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert(self, record: DeploymentRecord, *, max_per_user: int) -> None:
        """Store a new deployment; Forbidden past ``max_per_user`` (checked in the same transaction)."""
        async with self.db.transaction():
            count = await self.db.fetch_one("SELECT COUNT(*) AS n FROM deployments WHERE user_id = ?",
                                            (record.user_id,))
            if count is not None and int(count["n"]) >= max_per_user:
                raise Forbidden(f"You have {max_per_user} deployments, the most allowed "
                                "(KUBEGATE_MAX_DEPLOYMENTS_PER_USER); delete one first")
            await insert(self.db, "deployments", _row(record))
            await self._write_env(record.name, record.env)
        await self.db.announce()

    async def _write_env(self, name: str, env: tuple[EnvVar, ...]) -> None:
        await self.db.execute("DELETE FROM deployment_env WHERE name = ?", (name,))
        for position, var in enumerate(env):
            await self.db.execute(
                "INSERT INTO deployment_env(name, position, env_name, value, secret) VALUES (?, ?, ?, ?, ?)",
                (name, position, var.name, var.value, int(var.secret)))

    async def get(self, user_id: str, name: str) -> DeploymentRecord | None:
        row = await self.db.fetch_one("SELECT * FROM deployments WHERE name = ? AND user_id = ?", (name, user_id))
        return await self._load(row) if row else None

    async def by_name(self, name: str, *, env: bool = True) -> DeploymentRecord | None:
        """The deployment called ``name``; without its env when ``env`` is False (one query, for the proxy)."""
        row = await self.db.fetch_one("SELECT * FROM deployments WHERE name = ?", (name,))
        if row is None:
            return None
        return await self._load(row) if env else _bare(row)

    async def versions(self) -> list[tuple[str, int, int, str]]:
        """Every deployment's (name, revision, replicas, status): what the keeper compares with what it applied."""
        rows = await self.db.fetch_all("SELECT name, revision, replicas, status FROM deployments")
        return [(r["name"], int(r["revision"]), int(r["replicas"]), r["status"]) for r in rows]

    async def all(self) -> list[DeploymentRecord]:
        return [await self._load(row) for row in await self.db.fetch_all("SELECT * FROM deployments")]

    async def list(self, user_id: str, status: str | None) -> list[DeploymentRecord]:
        """A user's deployments, newest first (the quota bounds how many)."""
        where, params = ["user_id = ?"], [user_id]
        if status is not None:
            where.append("status = ?")
            params.append(status)
        rows = await self.db.fetch_all(
            f"SELECT * FROM deployments WHERE {' AND '.join(where)} ORDER BY created_at DESC, name DESC", params)
        return [await self._load(row) for row in rows]

    async def replace(self, record: DeploymentRecord, *, revision: int) -> bool:
        """Write ``record``'s spec (image, env, revision...) if the row is still at ``revision`` and not being
        deleted; False otherwise (another update came first). Its replicas and observed status stay."""
        row = {c: v for c, v in _row(record).items() if c not in _NOT_UPDATED}
        async with self.db.transaction():
            changed = await self.db.execute(
                f"UPDATE deployments SET {', '.join(f'{c} = ?' for c in row)}"
                " WHERE name = ? AND revision = ? AND status <> 'Deleting'", [*row.values(), record.name, revision])
            if changed:
                await self._write_env(record.name, record.env)
        if changed:
            await self.db.announce()
        return changed > 0

    async def scale(self, name: str, replicas: int, at: str) -> bool:
        """Set the replicas, unless the deployment is being deleted (False then)."""
        changed = await self.db.execute("UPDATE deployments SET replicas = ?, updated_at = ? WHERE name = ?"
                                        " AND status <> 'Deleting'", (replicas, at, name))
        if changed:
            await self.db.announce()
        return changed > 0

    async def set_status(self, name: str, status: str, ready: int, last_error: str | None, at: str,
                         replicas: Sequence[ReplicaRecord] = ()) -> bool:
        """Record what the runtime reports, unless the deployment is being deleted."""
        states = json.dumps([asdict(r) for r in replicas])
        changed = await self.db.execute(
            "UPDATE deployments SET status = ?, ready_replicas = ?, last_error = ?, replica_status = ?, updated_at = ?"
            " WHERE name = ? AND status <> 'Deleting'", (status, ready, last_error, states, at, name))
        return changed > 0

    async def mark_deleting(self, name: str, at: str) -> None:
        await self.db.execute("UPDATE deployments SET status = 'Deleting', updated_at = ? WHERE name = ?", (at, name))
        await self.db.announce()

    async def delete(self, name: str) -> None:
        async with self.db.transaction():
            await self.db.execute("DELETE FROM deployment_env WHERE name = ?", (name,))
            await self.db.execute("DELETE FROM deployments WHERE name = ?", (name,))

    async def _load(self, row: Row) -> DeploymentRecord:
        env = await self.db.fetch_all(
            "SELECT env_name, value, secret FROM deployment_env WHERE name = ? ORDER BY position", (row["name"],))
        return replace(_bare(row), env=tuple(EnvVar(e["env_name"], e["value"], bool(e["secret"])) for e in env))


def _bare(row: Row) -> DeploymentRecord:
    command = tuple(json.loads(row["command"])) if row["command"] is not None else None
    states = tuple(ReplicaRecord(**r) for r in json.loads(row["replica_status"] or "[]"))
    return DeploymentRecord(**{**row, "command": command, "network": bool(row["network"]), "replica_status": states})
