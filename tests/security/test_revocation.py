"""A wait in flight ends with 401 once its key is revoked, on every door that can wait."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.doors import DOORS, Door, McpDoor, open_door
from tests.gateway import Gateway, kubegate_env, mint_key

WAITING_DOORS = [d for d in DOORS if d != "rest"]  # REST has no wait: it goes through the shorthand


@pytest.fixture(params=WAITING_DOORS)
async def keyed_door(request: pytest.FixtureRequest, gateway: Gateway, stateless_gateway: Gateway, data_dir: Path,
                     runtime_env: dict[str, str], user_email: str) -> AsyncIterator[tuple[Door, str]]:
    key = mint_key(data_dir, user=user_email)
    async with open_door(request.param, url=gateway.url, stateless_url=stateless_gateway.url, key=key,
                         data_dir=data_dir, env=runtime_env) as door:
        yield door, key


async def waits_in_flight(gateway: Gateway) -> float:
    text = httpx.get(f"{gateway.url}/metrics").text
    found = re.search(r'^kubegate_tool_calls_in_flight\{tool="tasks_wait"\} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def until(condition: object, what: str, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not await condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_a_wait_stops_with_401_when_its_key_is_revoked(keyed_door: tuple[Door, str], gateway: Gateway,
                                                              stateless_gateway: Gateway, data_dir: Path,
                                                              user_email: str) -> None:
    door, key = keyed_door
    serving = stateless_gateway if door.name == "mcp-http-stateless" else gateway
    created = await door.call("tasks_create", {"name": "sleeper", "image": "busybox",
                                               "command": ["sh", "-c", "echo started; sleep 120"]})
    assert created.ok, created.body
    task_id = created.body["task"]["id"]
    other = mint_key(data_dir, user=user_email)  # the same user's second key revokes the first
    async with httpx.AsyncClient(base_url=gateway.url, headers={"Authorization": f"Bearer {other}"}) as http:
        own_id = next(k["id"] for k in (await http.get("/api/api-keys")).json()["apiKeys"]
                      if k["prefix"] == key[:12])
        before = await waits_in_flight(serving)
        wait = asyncio.create_task(door.call("tasks_wait", {"taskId": task_id, "timeoutSeconds": 100}))
        if isinstance(door, McpDoor) and door.name == "mcp-stdio":  # its own process; it forwards log lines
            async def started() -> bool:
                return any("started" in line for line in door.logs) or wait.done()
        else:
            async def started() -> bool:
                return await waits_in_flight(serving) > before or wait.done()
        await until(started, "the wait to be in flight")
        assert not wait.done(), wait.result()
        assert (await http.delete(f"/api/api-keys/{own_id}")).status_code == 200
        outcome = await asyncio.wait_for(wait, 60)  # the wait itself would run for 100 s
        assert outcome.error_status == 401 and outcome.body["error"] == "unauthorized", outcome.body
        assert (await http.delete(f"/api/tasks/{task_id}")).status_code == 200


async def test_a_wait_stops_with_401_when_the_cli_revokes_its_key_in_another_process(
        gateway: Gateway, data_dir: Path, runtime_env: dict[str, str], user_email: str) -> None:
    key = mint_key(data_dir, user=user_email)
    async with open_door("mcp-http", url=gateway.url, stateless_url=gateway.url, key=key, data_dir=data_dir,
                         env=runtime_env) as door:
        created = await door.call("tasks_create", {"name": "sleeper", "image": "busybox",
                                                   "command": ["sh", "-c", "sleep 120"]})
        assert created.ok, created.body
        async with httpx.AsyncClient(base_url=gateway.url, headers={"Authorization": f"Bearer {key}"}) as http:
            own_id = next(k["id"] for k in (await http.get("/api/api-keys")).json()["apiKeys"]
                          if k["prefix"] == key[:12])
        before = await waits_in_flight(gateway)
        wait = asyncio.create_task(door.call("tasks_wait", {"taskId": created.body["task"]["id"],
                                                            "timeoutSeconds": 100}))

        async def started() -> bool:
            return await waits_in_flight(gateway) > before or wait.done()

        await until(started, "the wait to be in flight")
        revoke = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mcp_server.cli", "keys", "revoke", "--user", user_email, own_id,
            env=kubegate_env(data_dir, runtime_env), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await revoke.communicate()
        assert revoke.returncode == 0, (out, err)
        # Waits recheck every hour here (NO_BACKSTOP): only the store's change event can end this one.
        outcome = await asyncio.wait_for(wait, 60)
        assert outcome.error_status == 401 and outcome.body["error"] == "unauthorized", outcome.body
