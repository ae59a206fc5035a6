"""One data dir, two processes: what ``kubegate stdio`` starts, the running gateway follows to its end.

The stdio session closes right after creating its work, so nobody but the gateway is left to
notice the runs end; the gateway must record that at once (inotify on the runs dir), without a
restart.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client, StdioServerParameters

from tests.gateway import Gateway, kubegate_env, mint_key


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = Gateway(tmp_path_factory.mktemp("beside")).start()
    yield gw
    gw.stop()


async def _create_over_stdio(data_dir: Path, key: str, tool: str, body: dict[str, Any]) -> dict[str, Any]:
    params = StdioServerParameters(command=sys.executable, args=["-m", "mcp_server.cli", "stdio"],
                                   env=kubegate_env(data_dir, {"KUBEGATE_API_KEY": key}))
    async with Client(params, mode="legacy") as client:
        result = await client.call_tool(tool, body)
    assert not result.is_error and result.structured_content, result
    return result.structured_content


def _until_finished(url: str, key: str, path: str, envelope: str) -> dict[str, Any]:
    deadline = time.monotonic() + 90
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        while True:
            body: dict[str, Any] = http.get(f"{url}{path}").json()[envelope]
            if body["status"] not in ("pending", "running") or time.monotonic() > deadline:
                return body
            time.sleep(0.2)  # bounded poll of the observable outcome, not a wait for it to happen


async def test_a_task_started_over_stdio_is_followed_to_its_end(gateway: Gateway) -> None:
    key = mint_key(gateway.data_dir)
    body = {"name": "beside", "image": "alpine:3", "command": ["sh", "-c", "sleep 1; echo done-beside; exit 5"]}
    task = (await _create_over_stdio(gateway.data_dir, key, "tasks_create", body))["task"]
    done = _until_finished(gateway.url, key, f"/api/tasks/{task['id']}", "task")
    assert done["status"] == "failed" and done["exitCode"] == 5 and done["reason"] == "error"
    assert "done-beside" in done["logs"]


async def test_a_workflow_started_over_stdio_is_driven_to_its_end(gateway: Gateway) -> None:
    key = mint_key(gateway.data_dir)
    steps = [{"name": "first", "image": "alpine:3", "command": ["sh", "-c", "sleep 1; echo one"]},
             {"name": "second", "image": "alpine:3", "command": ["sh", "-c", "echo {{steps.first.output}}-two"],
              "dependsOn": ["first"]}]
    workflow = (await _create_over_stdio(gateway.data_dir, key, "workflows_create",
                                         {"name": "beside", "steps": steps}))["workflow"]
    done = _until_finished(gateway.url, key, f"/api/workflows/{workflow['id']}", "workflow")
    assert done["status"] == "completed", done
    assert [s["output"] for s in done["steps"]] == ["one", "one-two"]


async def test_a_gateway_started_after_a_lone_stdio_drives_its_workflow_once_the_stdio_exits(
        tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key = mint_key(data_dir)
    params = StdioServerParameters(command=sys.executable, args=["-m", "mcp_server.cli", "stdio"],
                                   env=kubegate_env(data_dir, {"KUBEGATE_API_KEY": key}))
    steps = [{"name": "first", "image": "alpine:3", "command": ["sh", "-c", "sleep 4; echo one"]},
             {"name": "second", "image": "alpine:3", "command": ["sh", "-c", "echo {{steps.first.output}}-two"],
              "dependsOn": ["first"]}]
    gateway = Gateway(data_dir)
    try:
        async with Client(params, mode="legacy") as stdio:  # alone: it holds the recovery lease
            result = await stdio.call_tool("workflows_create", {"name": "lone", "steps": steps})
            assert not result.is_error and result.structured_content, result
            workflow = result.structured_content["workflow"]
            gateway.start()  # second: it waits for the lease
        # The stdio is gone with its first step still running. Only the gateway is left to see that step end and
        # start the next: it must have taken the lease and recovered.
        done = _until_finished(gateway.url, key, f"/api/workflows/{workflow['id']}", "workflow")
    finally:
        gateway.stop()
    assert done["status"] == "completed", done
    assert [s["output"] for s in done["steps"]] == ["one", "one-two"]
