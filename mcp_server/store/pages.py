"""Keyset pagination: newest first, with an opaque cursor naming the last row seen."""

from __future__ import annotations

import base64
import json
from typing import Any

from mcp_server.errors import ValidationFailed


def encode_cursor(row: dict[str, Any]) -> str:
    raw = json.dumps([row["created_at"], row["id"]]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, row_id = json.loads(raw)
        if isinstance(created_at, str) and isinstance(row_id, str):
            return created_at, row_id
    except (ValueError, TypeError):
        pass
    raise ValidationFailed("is not a cursor returned by this API", field="cursor")


def page_query(table: str, user_id: str, *, status: str | None, limit: int,
               cursor: str | None) -> tuple[str, list[Any]]:
    """SQL and parameters for one page of ``table`` (one row more than ``limit``, to know if more follow)."""
    where, params = ["user_id = ?"], [user_id]
    if status is not None:
        where.append("status = ?")
        params.append(status)
    if cursor is not None:
        where.append("(created_at, id) < (?, ?)")
        params.extend(decode_cursor(cursor))
    sql = f"SELECT * FROM {table} WHERE {' AND '.join(where)} ORDER BY created_at DESC, id DESC LIMIT ?"
    return sql, [*params, limit + 1]
