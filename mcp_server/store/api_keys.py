"""API keys: stored as a digest of the secret, with scopes, expiry, revocation and lineage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mcp_server.store.db import Database
from mcp_server.store.rows import Row, insert, json_tuple, to_json


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    id: str
    user_id: str
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: str
    expires_at: str | None
    last_used_at: str | None
    revoked_at: str | None
    parent_id: str | None


@dataclass(frozen=True, slots=True)
class NewApiKeyRow:
    id: str
    user_id: str
    name: str
    prefix: str
    key_hash: str
    scopes: tuple[str, ...]
    created_at: str
    expires_at: str | None
    parent_id: str | None


@dataclass(frozen=True, slots=True)
class KeyHolder:
    """A key found by its digest, with its owner's email: what authentication needs."""

    key: ApiKeyRecord
    email: str


def _record(row: Row) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row["id"], user_id=row["user_id"], name=row["name"], prefix=row["prefix"],
        scopes=json_tuple(row["scopes"]), created_at=row["created_at"], expires_at=row["expires_at"],
        last_used_at=row["last_used_at"], revoked_at=row["revoked_at"], parent_id=row["parent_id"],
    )


_DECODED_ROWS = 4096
"""How many distinct key rows ``by_hash`` keeps decoded (then it starts afresh)."""


class ApiKeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        # Row values -> the holder decoded from them. The row is still read on every request
        # (revocation anywhere is seen at once); only decoding an unchanged row is skipped.
        self._holders: dict[tuple[Any, ...], KeyHolder] = {}
        self._records: dict[tuple[Any, ...], ApiKeyRecord] = {}

    async def insert(self, new: NewApiKeyRow) -> ApiKeyRecord:
        await insert(self._db, "api_keys", {
            "id": new.id, "user_id": new.user_id, "name": new.name, "prefix": new.prefix, "key_hash": new.key_hash,
            "scopes": to_json(new.scopes), "created_at": new.created_at, "expires_at": new.expires_at,
            "parent_id": new.parent_id,
        })
        return ApiKeyRecord(id=new.id, user_id=new.user_id, name=new.name, prefix=new.prefix, scopes=new.scopes,
                            created_at=new.created_at, expires_at=new.expires_at, last_used_at=None,
                            revoked_at=None, parent_id=new.parent_id)

    async def live(self, user_id: str) -> list[ApiKeyRecord]:
        """The user's keys not revoked, newest first."""
        rows = await self._db.fetch_all(
            "SELECT * FROM api_keys WHERE user_id = ? AND revoked_at IS NULL ORDER BY created_at DESC, id DESC",
            (user_id,))
        return [self._decoded(row) for row in rows]

    def _decoded(self, row: Row) -> ApiKeyRecord:
        """The record for a row, decoded once for as long as the row's values are unchanged.

        ``api_keys_list`` is what an agent calls most; decoding its rows (a JSON column each)
        cost more than reading them.
        """
        values = tuple(row.values())
        record = self._records.get(values)
        if record is None:
            if len(self._records) >= _DECODED_ROWS:
                self._records.clear()
            record = self._records[values] = _record(row)
        return record

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        row = await self._db.fetch_one("SELECT * FROM api_keys WHERE id = ?", (key_id,))
        return _record(row) if row else None

    async def by_hash(self, key_hash: str) -> KeyHolder | None:
        """The key with this digest and its owner's email, as stored now.

        The same holder object comes back for as long as the row is unchanged, so callers may
        keep what they derive from it keyed by identity.
        """
        row = await self._db.fetch_one(
            "SELECT k.*, u.email FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = ?", (key_hash,))
        if row is None:
            return None
        values = tuple(row.values())
        holder = self._holders.get(values)
        if holder is None:
            if len(self._holders) >= _DECODED_ROWS:
                self._holders.clear()
            holder = self._holders[values] = KeyHolder(key=_record(row), email=row["email"])
        return holder

    async def revoke_lineage(self, user_id: str, key_id: str, at: str) -> int:
        """Revoke the user's live key ``key_id`` and every live key minted from it, at any depth.

        Returns how many keys this revoked (0: no such live key of theirs).
        """
        async with self._db.transaction():
            live = await self._db.fetch_one(
                "SELECT id FROM api_keys WHERE id = ? AND user_id = ? AND revoked_at IS NULL", (key_id, user_id))
            if live is None:
                return 0
            revoked = await self._db.execute(
                "WITH RECURSIVE lineage(id) AS (SELECT ? UNION SELECT k.id FROM api_keys k"
                " JOIN lineage l ON k.parent_id = l.id)"
                " UPDATE api_keys SET revoked_at = ? WHERE id IN (SELECT id FROM lineage) AND revoked_at IS NULL",
                (key_id, at))
        await self._db.announce()  # after the commit: waits on these keys in other processes end now
        return revoked

    async def touch(self, key_id: str, at: str) -> None:
        await self._db.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (at, key_id))
