"""API keys: ``sk_live_`` + 256 random bits in base62, stored only as a SHA-256 digest.

A key carries so much entropy that a plain digest is as strong as a slow hash here, and it
lets the gateway find the key by an indexed lookup on every request. Validity (revoked,
expired) is read from the database on every request, so revocation in one process is seen by
the next request to any process sharing the data dir. ``lastUsedAt`` is written at most once
per ``touch_interval`` per key, so a busy key does not turn every read into a write.
"""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from mcp_server.auth.principal import Principal
from mcp_server.auth.revocation import REVOCATIONS
from mcp_server.ids import base62, new_id, stamp, utcnow
from mcp_server.store.db import Database

KEY_PREFIX = "sk_live_"
_SHOWN_CHARS = 4


def generate_key() -> str:
    return KEY_PREFIX + base62(secrets.token_bytes(32))


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@functools.lru_cache(maxsize=1024)
def _scopes(stored: str) -> tuple[str, ...]:
    """A key's stored scope list, parsed once per distinct list (most keys share a few)."""
    return tuple(json.loads(stored))


@dataclass(frozen=True, slots=True)
class NewKey:
    row: dict[str, Any]
    secret: str


class KeyStore:
    def __init__(self, db: Database, touch_interval: float = 60.0) -> None:
        self._db = db
        self._touch_interval = touch_interval
        self._touched: dict[str, float] = {}

    async def create(self, user_id: str, name: str, scopes: list[str], expires_in_days: int | None) -> NewKey:
        secret = generate_key()
        now = utcnow()
        row = {
            "id": new_id("key"),
            "user_id": user_id,
            "name": name,
            "prefix": secret[: len(KEY_PREFIX) + _SHOWN_CHARS],
            "key_hash": digest(secret),
            "scopes": json.dumps(scopes),
            "created_at": stamp(now),
            "expires_at": stamp(now + timedelta(days=expires_in_days)) if expires_in_days else None,
            "last_used_at": None,
            "revoked_at": None,
        }
        columns = ", ".join(row)
        await self._db.execute(
            f"INSERT INTO api_keys({columns}) VALUES ({', '.join('?' * len(row))})", row.values()
        )
        return NewKey(row=row, secret=secret)

    async def list(self, user_id: str) -> list[dict[str, Any]]:
        return await self._db.fetch_all(
            "SELECT * FROM api_keys WHERE user_id = ? AND revoked_at IS NULL ORDER BY created_at DESC, id DESC",
            (user_id,),
        )

    async def revoke(self, user_id: str, key_id: str) -> dict[str, Any] | None:
        """Revoke the caller's own key; ``None`` when there is no such live key of theirs."""
        changed = await self._db.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
            (stamp(), key_id, user_id),
        )
        if not changed:
            return None
        REVOCATIONS.revoked()  # calls in flight on this key stop now (auth/revocation.py)
        return await self._db.fetch_one("SELECT * FROM api_keys WHERE id = ?", (key_id,))

    async def authenticate(self, secret: str) -> Principal | None:
        """The principal for a presented key, or ``None`` if unknown, revoked or expired."""
        if not secret.startswith(KEY_PREFIX):
            return None
        row = await self._db.fetch_one(
            "SELECT k.id, k.user_id, k.scopes, k.expires_at, k.revoked_at, u.email"
            " FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = ?",
            (digest(secret),),
        )
        now = utcnow()
        if row is None or row["revoked_at"] is not None:
            return None
        if row["expires_at"] is not None and row["expires_at"] <= stamp(now):
            return None
        await self._touch(row["id"], now)
        return Principal(
            user_id=row["user_id"], email=row["email"], method="api_key",
            scopes=_scopes(row["scopes"]), key_id=row["id"],
        )

    async def _touch(self, key_id: str, now: Any) -> None:
        mono = time.monotonic()
        last = self._touched.get(key_id)
        if last is not None and mono - last < self._touch_interval:
            return
        self._touched[key_id] = mono
        await self._db.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (stamp(now), key_id))
