"""SIGKILL the gateway while tasks run, start it again: nothing is lost or stuck."""

from __future__ import annotations

import signal
from pathlib import Path

import anyio
import httpx

from tests.gateway import Gateway, mint_key
from tests.processes import process_alive


async def test_tasks_survive_a_gateway_sigkill(tmp_path: Path, runtime_env: dict[str, str]) -> None:
    data_dir = tmp_path / "data"
    key = mint_key(data_dir)
    headers = {"Authorization": f"Bearer {key}"}
    gateway = Gateway(data_dir, env_extra=dict(runtime_env)).start()
    try:
        async with httpx.AsyncClient(base_url=gateway.url, headers=headers) as http:
            async def create(command: list[str]) -> str:
                body = {"name": "survivor", "image": "alpine", "command": command}
                response = await http.post("/api/tasks", json=body)
                assert response.status_code == 201, response.text
                return str(response.json()["task"]["id"])

            short = await create(["sh", "-c", "sleep 0.61; echo finished while down; exit 5"])
            long = await create(["sh", "-c", "sleep 2.37; echo finished after restart"])
            with anyio.fail_after(10):
                while not (process_alive("sleep 0.61") and process_alive("sleep 2.37")):
                    await anyio.lowlevel.checkpoint()
    finally:
        gateway.stop(signal.SIGKILL)

    with anyio.fail_after(10):  # the short task ends while no gateway is running
        while process_alive("sleep 0.61"):
            await anyio.lowlevel.checkpoint()
    assert process_alive("sleep 2.37"), "the long task outlives the gateway"

    restarted = Gateway(data_dir, env_extra=dict(runtime_env)).start()
    try:
        async with httpx.AsyncClient(base_url=restarted.url, headers=headers, timeout=60) as http:
            async def wait(task_id: str) -> dict[str, object]:
                body = {"method": "tasks/wait", "params": {"taskId": task_id, "timeoutSeconds": 30}}
                task: dict[str, object] = (await http.post("/api/mcp", json=body)).json()["result"]["task"]
                return task

            finished = await wait(short)
            assert finished["status"] == "failed" and finished["exitCode"] == 5
            assert "finished while down" in str(finished["logs"])
            reattached = await wait(long)
            assert reattached["status"] == "completed" and reattached["exitCode"] == 0
            assert "finished after restart" in str(reattached["logs"])
            listing = (await http.get("/api/tasks")).json()["tasks"]
            assert all(t["status"] in ("completed", "failed") for t in listing)
    finally:
        restarted.stop()
