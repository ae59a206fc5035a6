"""Sandboxes in the store: typed records in, frozen records out; the only SQL about sandboxes.

With several replicas, a follower hands a sandbox's start to the leader as a row of
``sandbox_starts`` (its ``RunSpec``, env and password included), written in the same transaction
as the sandbox: whoever reads the live sandboxes in one statement knows which are started and
which still wait to be (``live_started``). ``take_start`` deletes the row; only its winner starts it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mcp_server.errors import Conflict, Forbidden
from mcp_server.runtime.base import RunSpec
from mcp_server.store.db import Database, IntegrityError
from mcp_server.store.pages import fetch_page
from mcp_server.store.rows import Row
from mcp_server.store.run_queue import decode_spec, encode_spec

LIVE = ("provisioning", "running")
_LIVE_SQL = "status IN ('provisioning', 'running')"


@dataclass(frozen=True, slots=True)
class SandboxRecord:
    id: str
    user_id: str
    name: str
    host_label: str
    image: str
    size: str
    network: bool
    env_keys: tuple[str, ...]
    password_hash: str
    status: str
    reason: str | None
    message: str | None
    timeout_seconds: float
    created_at: str
    started_at: str | None
    expires_at: str
    ended_at: str | None

    @property
    def live(self) -> bool:
        return self.status in LIVE


def _record(row: Row) -> SandboxRecord:
    return SandboxRecord(**{**row, "network": bool(row["network"]), "env_keys": tuple(json.loads(row["env_keys"]))})


class SandboxRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert(self, record: SandboxRecord, *, max_live: int, start: RunSpec | None = None) -> None:
        """Store a new live sandbox; Forbidden past ``max_live`` live ones, Conflict on a live name clash.

        Both are checked in one transaction, so two creates racing cannot both pass the quota. ``start``:
        the sandbox's start, handed to the leader with it.
        """
        row: dict[str, Any] = {
            **{f: getattr(record, f) for f in record.__dataclass_fields__},
            "network": int(record.network), "env_keys": json.dumps(list(record.env_keys)),
        }
        async with self.db.transaction():
            if await self.count_live(record.user_id) >= max_live:
                raise Forbidden(f"You have {max_live} live sandboxes, the most allowed "
                                "(KUBEGATE_MAX_SANDBOXES_PER_USER); delete one first")
            try:
                await self.db.execute(
                    f"INSERT INTO sandboxes({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", row.values()
                )
            except IntegrityError as exc:
                raise Conflict(f"You already have a live sandbox named '{record.name}'; pick another name "
                               "or delete it first") from exc
            if start is not None:
                await self.db.execute("INSERT INTO sandbox_starts(sandbox_id, spec) VALUES (?, ?)",
                                      (record.id, encode_spec(start)))

    async def count_live(self, user_id: str) -> int:
        row = await self.db.fetch_one(f"SELECT COUNT(*) AS n FROM sandboxes WHERE user_id = ? AND {_LIVE_SQL}",
                                      (user_id,))
        return int(row["n"]) if row else 0

    async def get(self, user_id: str, sandbox_id: str) -> SandboxRecord | None:
        row = await self.db.fetch_one("SELECT * FROM sandboxes WHERE id = ? AND user_id = ?", (sandbox_id, user_id))
        return _record(row) if row else None

    async def by_id(self, sandbox_id: str) -> SandboxRecord | None:
        row = await self.db.fetch_one("SELECT * FROM sandboxes WHERE id = ?", (sandbox_id,))
        return _record(row) if row else None

    async def live_by_host(self, host_label: str) -> SandboxRecord | None:
        row = await self.db.fetch_one(f"SELECT * FROM sandboxes WHERE host_label = ? AND {_LIVE_SQL}", (host_label,))
        return _record(row) if row else None

    async def page(self, user_id: str, status: str | None, limit: int,
                   cursor: str | None) -> tuple[list[SandboxRecord], str | None]:
        return await fetch_page(self.db, "sandboxes", _record, limit=limit, cursor=cursor, user_id=user_id,
                                status=status)

    async def live_started(self) -> list[SandboxRecord]:
        """The live sandboxes, less those whose start still waits for the leader (one statement: one snapshot)."""
        rows = await self.db.fetch_all(f"SELECT * FROM sandboxes WHERE {_LIVE_SQL}"
                                       " AND id NOT IN (SELECT sandbox_id FROM sandbox_starts)")
        return [_record(r) for r in rows]

    async def waiting_starts(self) -> list[RunSpec]:
        """The starts handed to the leader and not taken yet, oldest first."""
        rows = await self.db.fetch_all("SELECT spec FROM sandbox_starts ORDER BY seq")
        return [decode_spec(row["spec"]) for row in rows]

    async def take_start(self, sandbox_id: str) -> bool:
        """Delete the waiting start of ``sandbox_id``; True for the one caller that did (it starts the sandbox)."""
        return await self.db.execute("DELETE FROM sandbox_starts WHERE sandbox_id = ?", (sandbox_id,)) > 0

    async def mark_running(self, sandbox_id: str, at: str) -> bool:
        changed = await self.db.execute(
            "UPDATE sandboxes SET status = 'running', started_at = COALESCE(started_at, ?)"
            " WHERE id = ? AND status = 'provisioning'", (at, sandbox_id))
        return changed > 0

    async def mark_ended(self, sandbox_id: str, status: str, reason: str, message: str | None, at: str) -> bool:
        changed = await self.db.execute(
            f"UPDATE sandboxes SET status = ?, reason = ?, message = ?, ended_at = ? WHERE id = ? AND {_LIVE_SQL}",
            (status, reason, message, at, sandbox_id))
        return changed > 0

    async def set_expiry(self, sandbox_id: str, expires_at: str) -> None:
        await self.db.execute("UPDATE sandboxes SET expires_at = ? WHERE id = ?", (expires_at, sandbox_id))

    async def delete(self, sandbox_id: str) -> None:
        await self.db.execute("DELETE FROM sandboxes WHERE id = ?", (sandbox_id,))
