"""Login sessions: only the digest of the cookie's token is stored."""

from __future__ import annotations

from dataclasses import dataclass

from mcp_server.store.db import Database
from mcp_server.store.rows import insert


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    user_id: str
    email: str
    provider: str
    created_at: str
    expires_at: str


@dataclass(frozen=True, slots=True)
class NewSessionRow:
    id: str
    user_id: str
    token_hash: str
    provider: str
    created_at: str
    expires_at: str


class SessionRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, new: NewSessionRow) -> None:
        await insert(self._db, "sessions", {
            "id": new.id, "user_id": new.user_id, "token_hash": new.token_hash, "provider": new.provider,
            "created_at": new.created_at, "expires_at": new.expires_at,
        })

    async def purge_expired(self, now: str) -> None:
        await self._db.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))

    async def by_hash(self, token_hash: str) -> SessionRecord | None:
        row = await self._db.fetch_one(
            "SELECT s.id, s.user_id, s.provider, s.created_at, s.expires_at, u.email FROM sessions s"
            " JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?", (token_hash,))
        if row is None:
            return None
        return SessionRecord(id=row["id"], user_id=row["user_id"], email=row["email"], provider=row["provider"],
                             created_at=row["created_at"], expires_at=row["expires_at"])

    async def delete_by_hash(self, token_hash: str) -> bool:
        deleted = bool(await self._db.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,)))
        if deleted:
            await self._db.announce()  # waits on this session in other processes end now
        return deleted
