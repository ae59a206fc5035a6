"""SIGKILL the gateway while tasks run, start it again: nothing is lost or stuck."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

import httpx

from tests.gateway import Gateway, mint_key
from tests.processes import process_alive, until_alive
from tests.runtime.support import Handshake


async def test_tasks_survive_a_gateway_sigkill(tmp_path: Path, scratch: Path, runtime_env: dict[str, str]) -> None:
    # Each task waits for the test's word (a FIFO handshake), so which one ends while the gateway is
    # down and which one outlives it is decided by the test, not by sleeps racing the machine's load.
    short_gate, long_gate = Handshake(scratch), Handshake(scratch)
    short_marker, long_marker = f"kubegate-short-{uuid.uuid4().hex}", f"kubegate-long-{uuid.uuid4().hex}"
    data_dir = tmp_path / "data"
    key = mint_key(data_dir)
    headers = {"Authorization": f"Bearer {key}"}
    gateway = Gateway(data_dir, env_extra=dict(runtime_env)).start()
    try:
        async with httpx.AsyncClient(base_url=gateway.url, headers=headers) as http:
            async def create(script: str, marker: str) -> str:
                # The marker is the shell's $0: it names the task's process in /proc for as long as it runs.
                body = {"name": "survivor", "image": "alpine", "command": ["sh", "-c", script, marker]}
                response = await http.post("/api/tasks", json=body)
                assert response.status_code == 201, response.text
                return str(response.json()["task"]["id"])

            short = await create(short_gate.script("echo finished while down; exit 5"), short_marker)
            long = await create(long_gate.script("echo finished after restart"), long_marker)
            await short_gate.ready()
            await long_gate.ready()
    finally:
        gateway.stop(signal.SIGKILL)

    short_gate.go()
    await until_alive(short_marker, alive=False)  # the short task ends while no gateway is running
    assert process_alive(long_marker), "the long task outlives the gateway"

    restarted = Gateway(data_dir, env_extra=dict(runtime_env)).start()
    try:
        async with httpx.AsyncClient(base_url=restarted.url, headers=headers, timeout=60) as http:
            async def wait(task_id: str) -> dict[str, object]:
                body = {"method": "tasks/wait", "params": {"taskId": task_id, "timeoutSeconds": 30}}
                task: dict[str, object] = (await http.post("/api/mcp", json=body)).json()["result"]["task"]
                return task

            long_gate.go()
            finished = await wait(short)
            assert finished["status"] == "failed" and finished["exitCode"] == 5
            assert "finished while down" in str(finished["logs"])
            reattached = await wait(long)
            assert reattached["status"] == "completed" and reattached["exitCode"] == 0
            assert "finished after restart" in str(reattached["logs"])
            listing = (await http.get("/api/tasks")).json()["tasks"]
            assert sorted(t["id"] for t in listing) == sorted([short, long])
            assert all(t["status"] in ("completed", "failed") for t in listing)
    finally:
        restarted.stop()
        short_gate.close()
        long_gate.close()
