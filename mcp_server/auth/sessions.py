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

from mcp_server.auth.keys import digest
from mcp_server.auth.principal import ALL_SCOPES, Principal
from mcp_server.ids import base62, new_id, stamp, utcnow
from mcp_server.store.sessions import NewSessionRow, SessionRepository

SESSION_COOKIE = "session"
CSRF_COOKIE = "csrf_token"
CSRF_HEADER = "x-csrf-token"


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
    def __init__(self, sessions: SessionRepository, max_age_seconds: int) -> None:
        self._sessions = sessions
        self.max_age_seconds = max_age_seconds

    async def create(self, user_id: str, provider: str) -> NewSession:
        now = utcnow()
        token = base62(secrets.token_bytes(32))
        session = NewSession(id=new_id("sess"), token=token,
                             expires_at=stamp(now + timedelta(seconds=self.max_age_seconds)))
        await self._sessions.purge_expired(stamp(now))
        await self._sessions.insert(NewSessionRow(id=session.id, user_id=user_id, token_hash=digest(token),
                                                  provider=provider, created_at=stamp(now),
                                                  expires_at=session.expires_at))
        return session

    async def authenticate(self, token: str) -> Principal | None:
        """The principal of a live session, or ``None`` for an unknown, ended or expired one."""
        if not token or len(token) > 128:
            return None
        found = await self._sessions.by_hash(digest(token))
        if found is None or found.expires_at <= stamp():
            return None
        return Principal(user_id=found.user_id, email=found.email, method="session", scopes=ALL_SCOPES,
                         session_id=found.id)

    async def revoke(self, token: str) -> bool:
        return await self._sessions.delete_by_hash(digest(token))
