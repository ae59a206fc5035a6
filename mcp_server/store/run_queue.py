"""The fair-share queue on disk: runs waiting for a slot, so a restart loses none of them.

Specs are stored as the JSON of ``RunSpec``'s fields, env values included, only while the run
waits (like ``run_secrets``); ``take`` deletes a run's row when it starts or is dropped.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Literal

from mcp_server.runtime.base import RunSpec
from mcp_server.store.db import Database

Stored = Literal["tasks", "workflows"]


def encode_spec(spec: RunSpec) -> str:
    """``spec`` as the JSON of its fields, env values included (for a row that lives only until it starts)."""
    return json.dumps({**asdict(spec), "command": list(spec.command), "env": dict(spec.env),
                       "labels": dict(spec.labels)})


def decode_spec(text: str) -> RunSpec:
    return RunSpec(**json.loads(text))


class RunQueue:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def put(self, spec: RunSpec) -> None:
        await self._db.execute(
            "INSERT INTO run_queue(run_id, owner, spec) VALUES (?, ?, ?) ON CONFLICT(run_id) DO NOTHING",
            (spec.run_id, spec.owner, encode_spec(spec)))

    async def take(self, run_id: str) -> None:
        await self._db.execute("DELETE FROM run_queue WHERE run_id = ?", (run_id,))

    async def waiting(self) -> list[RunSpec]:
        """Every waiting run, oldest first."""
        rows = await self._db.fetch_all("SELECT spec FROM run_queue ORDER BY seq")
        return [decode_spec(row["spec"]) for row in rows]

    async def stored_count(self, kind: Stored, user_id: str) -> int:
        """How many ``kind`` objects ``user_id`` keeps."""
        table = {"tasks": "tasks", "workflows": "workflows"}[kind]
        row = await self._db.fetch_one(f"SELECT COUNT(*) AS n FROM {table} WHERE user_id = ?", (user_id,))
        return int(row["n"]) if row else 0
