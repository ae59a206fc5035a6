"""The audit log: one row per state-changing request (who, what, when, from where, status)."""

from __future__ import annotations

from dataclasses import dataclass

from mcp_server.ids import new_id, stamp
from mcp_server.store.db import Database
from mcp_server.store.pages import fetch_page
from mcp_server.store.rows import Row, insert


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What the audit layer records; the id and time are added here."""

    user_id: str | None
    email: str | None
    auth_method: str | None
    method: str
    path: str
    action: str | None
    status: int
    client_ip: str | None
    key_id: str | None = None
    """The API key that acted (its id, never the secret)."""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: str
    created_at: str
    entry: AuditEntry


def _record(row: Row) -> AuditRecord:
    return AuditRecord(id=row["id"], created_at=row["created_at"], entry=AuditEntry(
        user_id=row["user_id"], email=row["email"], auth_method=row["auth_method"], method=row["method"],
        path=row["path"], action=row["action"], status=row["status"], client_ip=row["client_ip"],
        key_id=row["key_id"],
    ))


class AuditStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, entry: AuditEntry) -> None:
        await insert(self._db, "audit_log", {
            "id": new_id("audit"), "created_at": stamp(), "user_id": entry.user_id, "email": entry.email,
            "auth_method": entry.auth_method, "method": entry.method, "path": entry.path, "action": entry.action,
            "status": entry.status, "client_ip": entry.client_ip, "key_id": entry.key_id,
        })

    async def page(self, *, limit: int, cursor: str | None,
                   user_id: str | None) -> tuple[list[AuditRecord], str | None]:
        """Newest first; the cursor names the last row of the previous page."""
        return await fetch_page(self._db, "audit_log", _record, limit=limit, cursor=cursor, user_id=user_id)
