"""Keyset pagination: newest first, with a cursor naming the last row seen.

A cursor is ``<created_at>~<id>`` of the last row of a page. Any string of that shape (the
``Cursor`` type checks it) is a position in the order, so a hand-made cursor can skip rows but
never reveal another user's: the user filter applies as always.
"""

from __future__ import annotations

from typing import Any


def encode_cursor(row: dict[str, Any]) -> str:
    return f"{row['created_at']}~{row['id']}"


def decode_cursor(cursor: str) -> tuple[str, str]:
    created_at, _, row_id = cursor.partition("~")
    return created_at, row_id


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
