"""Users: created on first sight (first login, or ``kubegate keys create --user``)."""

from __future__ import annotations

from dataclasses import dataclass

from mcp_server.ids import new_id, stamp
from mcp_server.store.db import Database


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str


class UserStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def ensure(self, email: str) -> User:
        """The user with ``email``, created if new; safe when two processes race to create it."""
        email = email.strip().lower()
        await self._db.execute(
            "INSERT INTO users(id, email, created_at) VALUES (?, ?, ?) ON CONFLICT(email) DO NOTHING",
            (new_id("user"), email, stamp()),
        )
        row = await self._db.fetch_one("SELECT id, email FROM users WHERE email = ?", (email,))
        assert row is not None
        return User(id=row["id"], email=row["email"])

    async def get(self, user_id: str) -> User | None:
        row = await self._db.fetch_one("SELECT id, email FROM users WHERE id = ?", (user_id,))
        return User(id=row["id"], email=row["email"]) if row else None
