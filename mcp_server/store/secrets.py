"""Env values of runs not yet started: kept only until their run has the spec (or never will)."""

from __future__ import annotations

from collections.abc import Mapping

from mcp_server.store.db import Database
from mcp_server.store.rows import insert, json_dict, to_json


class RunSecrets:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def put(self, run_id: str, env: Mapping[str, str]) -> None:
        await insert(self._db, "run_secrets", {"run_id": run_id, "env": to_json(env)})

    async def get(self, run_id: str) -> dict[str, str]:
        row = await self._db.fetch_one("SELECT env FROM run_secrets WHERE run_id = ?", (run_id,))
        return json_dict(row["env"]) if row else {}

    async def forget(self, run_id: str) -> None:
        await self._db.execute("DELETE FROM run_secrets WHERE run_id = ?", (run_id,))

    async def run_ids(self) -> list[str]:
        return [row["run_id"] for row in await self._db.fetch_all("SELECT run_id FROM run_secrets")]
