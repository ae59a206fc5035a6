"""API keys: ``sk_live_`` + 256 random bits in base62, stored only as a SHA-256 digest.

A key carries so much entropy that a plain digest is as strong as a slow hash here, and it
lets the gateway find the key by an indexed lookup on every request. Validity (revoked,
expired) is read from the store on every request, so revocation in one process is seen by
the next request to any process sharing the store. ``lastUsedAt`` is written at most once
per ``touch_interval`` per key, so a busy key does not turn every read into a write.

A key minted by another key records it as its parent and never expires after it (see
``auth.policy``); revoking a key revokes its descendants.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from mcp_server.auth.policy import child_expiry
from mcp_server.auth.principal import Principal
from mcp_server.auth.revocation import REVOCATIONS
from mcp_server.ids import base62, new_id, parse, stamp, utcnow
from mcp_server.store.api_keys import ApiKeyRecord, ApiKeyStore, KeyHolder, NewApiKeyRow

KEY_PREFIX = "sk_live_"
_SHOWN_CHARS = 4
_KNOWN_KEYS = 4096
"""How many keys' principals ``KeyStore`` keeps built (then it starts afresh)."""


def generate_key() -> str:
    return KEY_PREFIX + base62(secrets.token_bytes(32))


def digest(secret: str) -> str:
    """The stored form of a key or session token."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class NewKey:
    key: ApiKeyRecord
    secret: str


class KeyStore:
    def __init__(self, keys: ApiKeyStore, touch_interval: float = 60.0) -> None:
        self._keys = keys
        self._touch_interval = touch_interval
        self._touched: dict[str, float] = {}
        # key id -> (the holder it was built from, its principal, its expiry as epoch seconds)
        self._known: dict[str, tuple[KeyHolder, Principal, float | None]] = {}

    async def create(self, user_id: str, name: str, scopes: Sequence[str], expires_in_days: int | None, *,
                     parent: ApiKeyRecord | None = None) -> NewKey:
        """Mint a key; with a ``parent``, it records its lineage and expires no later than the parent."""
        secret = generate_key()
        now = utcnow()
        wanted = stamp(now + timedelta(days=expires_in_days)) if expires_in_days else None
        expires_at = child_expiry(parent.expires_at if parent else None, wanted)
        record = await self._keys.insert(NewApiKeyRow(
            id=new_id("key"), user_id=user_id, name=name, prefix=secret[: len(KEY_PREFIX) + _SHOWN_CHARS],
            key_hash=digest(secret), scopes=tuple(scopes), created_at=stamp(now), expires_at=expires_at,
            parent_id=parent.id if parent else None,
        ))
        return NewKey(key=record, secret=secret)

    async def list(self, user_id: str) -> list[ApiKeyRecord]:
        return await self._keys.live(user_id)

    async def get(self, user_id: str, key_id: str) -> ApiKeyRecord | None:
        """One of the user's live keys."""
        key = await self._keys.get(key_id)
        return key if key is not None and key.user_id == user_id and key.revoked_at is None else None

    async def of(self, principal: Principal) -> ApiKeyRecord | None:
        """The key the principal authenticated with (``None`` for sessions and the local operator)."""
        return await self._keys.get(principal.key_id) if principal.key_id else None

    async def revoke(self, user_id: str, key_id: str) -> ApiKeyRecord | None:
        """Revoke the user's live key and its descendants; the key as revoked, or ``None`` if none such."""
        if not await self._keys.revoke_lineage(user_id, key_id, stamp()):
            return None
        REVOCATIONS.revoked()  # calls in flight on this key stop now (auth/revocation.py)
        return await self._keys.get(key_id)

    async def authenticate(self, secret: str) -> Principal | None:
        """The principal for a presented key, or ``None`` if unknown, revoked or expired.

        The key's row is read on every call; the principal is rebuilt only when the row changed
        (``ApiKeyStore.by_hash`` hands back the same holder while it has not).
        """
        if not secret.startswith(KEY_PREFIX):
            return None
        found = await self._keys.by_hash(digest(secret))
        if found is None or found.key.revoked_at is not None:
            return None
        known = self._known.get(found.key.id)
        if known is None or known[0] is not found:
            known = self._remember(found)
        _, principal, expires = known
        if expires is not None and expires <= time.time():
            return None
        await self._touch(found.key.id)
        return principal

    def _remember(self, found: KeyHolder) -> tuple[KeyHolder, Principal, float | None]:
        if len(self._known) >= _KNOWN_KEYS:
            self._known.clear()
        key = found.key
        principal = Principal(user_id=key.user_id, email=found.email, method="api_key", scopes=key.scopes,
                              key_id=key.id)
        expires = parse(key.expires_at).timestamp() if key.expires_at is not None else None
        known = self._known[key.id] = (found, principal, expires)
        return known

    async def _touch(self, key_id: str) -> None:
        mono = time.monotonic()
        last = self._touched.get(key_id)
        if last is not None and mono - last < self._touch_interval:
            return
        self._touched[key_id] = mono
        await self._keys.touch(key_id, stamp())
