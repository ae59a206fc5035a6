"""Helpers every repository shares: INSERT from a mapping, JSON columns, row -> record.

A repository for a new kind is one module: a frozen record, a ``_record(row)`` that decodes
the row (JSON columns through ``json_tuple``), and methods that call ``insert``, ``fetch_page``
(``store.pages``) and the ``Database`` with parameterised SQL. Nothing outside ``store``
sees a row or SQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mcp_server.store.db import Database

Row = Mapping[str, Any]
"""A row as the database gives it; never leaves ``store``."""


def placeholders(count: int) -> str:
    return ", ".join("?" * count)


async def insert(db: Database, table: str, values: Mapping[str, Any]) -> None:
    """``INSERT INTO table(columns) VALUES (...)`` from ``values`` (already encoded for storage)."""
    await db.execute(f"INSERT INTO {table}({', '.join(values)}) VALUES ({placeholders(len(values))})",
                     list(values.values()))


def to_json(value: Sequence[str] | Mapping[str, str]) -> str:
    return json.dumps(list(value) if not isinstance(value, Mapping) else dict(value))


def json_tuple(text: str) -> tuple[str, ...]:
    """A JSON array column as a tuple of strings."""
    return tuple(str(item) for item in json.loads(text))


def json_dict(text: str) -> dict[str, str]:
    return {str(k): str(v) for k, v in json.loads(text).items()}


def in_list(values: Iterable[str]) -> tuple[str, list[str]]:
    """``(?, ?, ...)`` and its parameters, for ``column IN``; ``(NULL)``, matching nothing, when empty."""
    items = list(values)
    return (f"({placeholders(len(items))})" if items else "(NULL)"), items
