"""A deployment made by a ``kubegate stdio`` that then exits: the gateway takes it over on the store's change
signal, and records what happens next with no request asking it (read from the SQLite file itself)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import anyio

from tests.deployments.support import create
from tests.doors import Door, open_door
from tests.gateway import Gateway


def _row(data_dir: Path, name: str) -> dict[str, Any]:
    with sqlite3.connect(f"file:{data_dir / 'kubegate.db'}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        found = db.execute("SELECT status, ready_replicas, last_error, replica_status FROM deployments"
                           " WHERE name = ?", (name,)).fetchone()
    return dict(found) if found is not None else {}


async def _stored(data_dir: Path, name: str, status: str, within: float = 60.0) -> dict[str, Any]:
    """Poll the store's row (not the gateway, whose reads would take the app over themselves), bounded."""
    row: dict[str, Any] = {}
    try:
        with anyio.fail_after(within):
            while (row := _row(data_dir, name)).get("status") != status:
                await anyio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"{name} never stored as {status}; last row: {row}") from None
    return row


async def test_the_gateway_records_what_an_exited_stdio_started(rest: Door, dep_gateway: Gateway, dep_key: str,
                                                                dep_data_dir: Path, dep_env: dict[str, str]) -> None:
    async with open_door("mcp-stdio", url=dep_gateway.url, stateless_url=dep_gateway.url, key=dep_key,
                         data_dir=dep_data_dir, env=dep_env) as stdio:
        serving = await create(stdio, template="hello-python")
        crashing = await create(stdio, image="busybox", port=8080, command=["sh", "-c", "echo no db >&2; exit 3"])
    # The stdio process is gone: it recorded no crash (Error takes several) and most likely not Ready either.
    try:
        ready = await _stored(dep_data_dir, serving["name"], "Ready")
        assert ready["ready_replicas"] == 1 and json.loads(ready["replica_status"])[0]["ready"] is True
        failed = await _stored(dep_data_dir, crashing["name"], "Error")
        assert "exited with code 3" in failed["last_error"] and "no db" in failed["last_error"], failed
        [replica] = json.loads(failed["replica_status"])
        assert replica["restarts"] >= 1 and replica["ready"] is False, replica
    finally:
        for made in (serving, crashing):
            await rest.call("deployments_delete", {"name": made["name"]})
