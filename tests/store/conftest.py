"""The repository contract runs on every backend: each test that takes ``stores`` runs on SQLite and
on PostgreSQL (``database_url``: a fresh database in the session's throwaway cluster)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mcp_server.store.stores import Stores, open_stores


@pytest.fixture
async def stores(tmp_path: Path, database_url: str | None) -> AsyncIterator[Stores]:
    opened = await open_stores(tmp_path / "kubegate.db", database_url)
    yield opened
    await opened.close()
