"""Login sessions, kept server-side so that logout (or an operator) can end them at once.

The ``session`` cookie carries 256 random bits; the store keeps only their SHA-256 digest, so
a copy of the database does not let anyone log in. Expiry is checked on every request and
expired rows are purged when new sessions are made. The CSRF token is derived from the session
token (an HMAC under it), so it needs no storage and is useless without the session it
belongs to.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from mcp_server.auth.principal import ALL_SCOPES, Principal
from mcp_server.ids import base62, new_id, stamp, utcnow
from mcp_server.store.db import Database

SESSION_COOKIE = "session"
CSRF_COOKIE = "csrf_token"
CSRF_HEADER = "x-csrf-token"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token_for(session_token: str) -> str:
    return hmac.new(session_token.encode(), b"kubegate-csrf", hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class NewSession:
    id: str
    token: str
    expires_at: str

    @property
    def csrf_token(self) -> str:
        return csrf_token_for(self.token)


class SessionStore:
    def __init__(self, db: Database, max_age_seconds: int) -> None:
        self._db = db
        self.max_age_seconds = max_age_seconds

    async def create(self, user_id: str, provider: str) -> NewSession:
        now = utcnow()
        token = base62(secrets.token_bytes(32))
        session = NewSession(id=new_id("sess"), token=token,
                             expires_at=stamp(now + timedelta(seconds=self.max_age_seconds)))
        await self._db.execute("DELETE FROM sessions WHERE expires_at <= ?", (stamp(now),))
        await self._db.execute(
            "INSERT INTO sessions(id, user_id, token_hash, provider, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
            (session.id, user_id, digest(token), provider, stamp(now), session.expires_at),
        )
        return session

    async def authenticate(self, token: str) -> Principal | None:
        """The principal of a live session, or ``None`` for an unknown, ended or expired one."""
        if not token or len(token) > 128:
            return None
        row = await self._db.fetch_one(
            "SELECT s.id, s.user_id, s.expires_at, u.email FROM sessions s JOIN users u ON u.id = s.user_id"
            " WHERE s.token_hash = ?",
            (digest(token),),
        )
        if row is None or row["expires_at"] <= stamp():
            return None
        return Principal(user_id=row["user_id"], email=row["email"], method="session", scopes=ALL_SCOPES,
                         session_id=row["id"])

    async def revoke(self, token: str) -> bool:
        return bool(await self._db.execute("DELETE FROM sessions WHERE token_hash = ?", (digest(token),)))
