"""Keyset pagination: newest first, with a cursor naming the last row seen.

A cursor is ``<created_at>~<id>`` of the last row of a page. Any string of that shape (the
``Cursor`` type checks it) is a position in the order, so a hand-made cursor can skip rows but
never reveal another user's: the user filter applies as always.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from mcp_server.store.db import Database
from mcp_server.store.rows import Row

T = TypeVar("T")


def encode_cursor(row: Row) -> str:
    return f"{row['created_at']}~{row['id']}"


def decode_cursor(cursor: str) -> tuple[str, str]:
    created_at, _, row_id = cursor.partition("~")
    return created_at, row_id


async def fetch_page(db: Database, table: str, record: Callable[[Row], T], *, limit: int, cursor: str | None,
                     **filters: str | None) -> tuple[list[T], str | None]:
    """One page of ``table``, newest first, rows matching every non-None filter (column = value).

    Returns the records and the cursor of the next page (None on the last page).
    """
    where: list[str] = []
    params: list[Any] = []
    for column, value in filters.items():
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if cursor is not None:
        where.append("(created_at, id) < (?, ?)")
        params.extend(decode_cursor(cursor))
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = await db.fetch_all(f"SELECT * FROM {table} {clause} ORDER BY created_at DESC, id DESC LIMIT ?",
                              [*params, limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return [record(row) for row in rows], encode_cursor(rows[-1]) if more and rows else None
