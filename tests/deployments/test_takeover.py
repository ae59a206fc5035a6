"""A deployment made by a ``kubegate stdio`` beside the gateway: the gateway, which holds the recovery lease,
keeps it (it hears of the row by the store's change signal), so the stdio may exit at any time, even before
the app is up, and what happens next is recorded with no request asking (read from the SQLite file itself)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import anyio

from tests import workloads
from tests.deployments.support import app_pids, create, wait_status
from tests.doors import Door, open_door
from tests.gateway import Gateway, mint_key

# Ready at the first health check, then it crashes after answering its third request (the probes keep coming).
FLAKY = r"""
import http.server, os, sys
served = []
class Once(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")
        self.wfile.flush()
        served.append(1)
        if len(served) >= 3:
            print("no db any more", flush=True)
            os._exit(3)
http.server.HTTPServer(("", 9000), Once).serve_forever()
"""


def _row(data_dir: Path, name: str) -> dict[str, Any]:
    with sqlite3.connect(f"file:{data_dir / 'kubegate.db'}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        found = db.execute("SELECT status, ready_replicas, last_error, replica_status FROM deployments"
                           " WHERE name = ?", (name,)).fetchone()
    return dict(found) if found is not None else {}


def _restarts(row: dict[str, Any]) -> int:
    return sum(r["restarts"] for r in json.loads(row.get("replica_status") or "[]"))


async def _crash_recorded(data_dir: Path, name: str) -> dict[str, Any]:
    """The row once it counts a restart, read from the store itself (bounded)."""
    row: dict[str, Any] = {}
    try:
        with anyio.fail_after(90):
            while _restarts(row := _row(data_dir, name)) < 1:
                await anyio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"{name}'s crash was never recorded; last row: {row}") from None
    return row


async def test_the_gateway_records_what_an_exited_stdio_started(rest: Door, dep_gateway: Gateway, dep_key: str,
                                                                dep_data_dir: Path, dep_env: dict[str, str]) -> None:
    async with open_door("mcp-stdio", url=dep_gateway.url, stateless_url=dep_gateway.url, key=dep_key,
                         data_dir=dep_data_dir, env=dep_env) as stdio:
        created = await create(stdio, image="python:3.12-slim", port=9000, command=["python3", "-c", FLAKY])
        name = created["name"]
        await wait_status(stdio, name, "Ready")
        assert _restarts(_row(dep_data_dir, name)) == 0
    # The stdio process is gone. The crash to come is recorded only if the gateway keeps the app: the test polls
    # the store's row, never the gateway (before, a read through it took the app over).
    try:
        row = await _crash_recorded(dep_data_dir, name)
    finally:
        await rest.call("deployments_delete", {"name": name})
    if dep_env["KUBEGATE_RUNTIME"] == "local":  # the agent's account (a kubelet says it only while backing off)
        [replica] = json.loads(row["replica_status"])
        assert "exited with code 3" in replica["last_error"] and "no db any more" in replica["last_error"], row


# Up only after a while, so the stdio that made it is gone well before it is Ready.
SLOW_START = ["sh", "-c", "sleep 2; exec python3 -m http.server 9000"]


async def test_an_app_whose_stdio_maker_exits_before_it_is_up_still_becomes_ready(
        dep_gateway: Gateway, dep_key: str, dep_data_dir: Path, dep_env: dict[str, str]) -> None:
    async with open_door("mcp-stdio", url=dep_gateway.url, stateless_url=dep_gateway.url, key=dep_key,
                         data_dir=dep_data_dir, env=dep_env) as stdio:
        name = (await create(stdio, image="python:3.12-slim", port=9000, command=SLOW_START))["name"]
    at_exit = _row(dep_data_dir, name)
    assert at_exit["status"] in ("Pending", "Provisioning"), at_exit
    row: dict[str, Any] = {}
    try:
        with anyio.fail_after(90):
            while (row := _row(dep_data_dir, name)).get("status") != "Ready":
                await anyio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"{name} was left {row.get('status')} once its maker exited; last row: {row}") from None
    finally:
        async with open_door("rest", url=dep_gateway.url, stateless_url=dep_gateway.url, key=dep_key,
                             data_dir=dep_data_dir) as rest:
            await rest.call("deployments_delete", {"name": name})
    assert row["ready_replicas"] == 1


async def test_a_gateway_started_beside_a_lone_stdio_keeps_its_apps_once_the_stdio_exits(
        dep_env: dict[str, str]) -> None:
    marker = uuid.uuid4().hex
    with workloads.outside_tmp("lease", dep_env) as data_dir, contextlib.ExitStack() as stack:
        key = mint_key(data_dir, user="lease@example.test")
        async with open_door("mcp-stdio", url="", stateless_url="", key=key, data_dir=data_dir,
                             env=dep_env) as stdio:  # alone: it holds the lease and keeps the app
            name = (await create(stdio, template="hello-python", envVars={"MARKER": marker}))["name"]
            await wait_status(stdio, name, "Ready")
            gateway = stack.enter_context(workloads.running_gateway(data_dir, dep_env))  # second: no lease
        # The stdio is gone, and its lease with it. The app's crash is recorded only if the lease passed to the
        # gateway, which then keeps the app: the test reads the row, never asks the gateway.
        [pid] = app_pids(marker)
        os.kill(pid, signal.SIGKILL)
        await _crash_recorded(data_dir, name)
        async with workloads.door_to("rest", gateway, key, data_dir, dep_env) as rest:
            assert (await rest.call("deployments_scale", {"name": name, "replicas": 2})).ok
            await wait_status(rest, name, "Ready", ready=2)
            await rest.call("deployments_delete", {"name": name})
