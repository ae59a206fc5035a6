"""SIGKILL the gateway while sandboxes run: they keep running, and their deadlines still hold."""

from __future__ import annotations

import json
import shutil
import signal
import tempfile
from pathlib import Path

import anyio
import httpx
import pytest

from tests.doors import open_door
from tests.gateway import Gateway, mint_key
from tests.sandboxes.support import SANDBOX_ENV
from tests.workloads import kill_supervisors


async def _status(http: httpx.AsyncClient, sid: str, *wanted: str) -> dict[str, object]:
    with anyio.fail_after(30):
        while (sandbox := (await http.get(f"/api/sandboxes/{sid}")).json()["sandbox"])["status"] not in wanted:
            await anyio.sleep(0.05)
    return dict(sandbox)


async def test_sandboxes_survive_a_gateway_sigkill() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="kubegate-sbx-restart-", dir="/var/tmp"))
    key = mint_key(data_dir)
    headers = {"Authorization": f"Bearer {key}"}
    gateway = Gateway(data_dir, env_extra=dict(SANDBOX_ENV)).start()
    try:
        async with httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=60) as http:
            async def create(name: str, timeout: str) -> str:
                response = await http.post("/api/sandboxes", json={"name": name, "image": "ubuntu", "timeout": timeout})
                assert response.status_code == 201, response.text
                return str(response.json()["sandbox"]["id"])

            keeper = await create("keeper", "10m")
            short = await create("short", "3s")
            for sid in (keeper, short):
                await _status(http, sid, "running")
            written = await http.post(f"/api/sandboxes/{keeper}/files", json={"path": "kept.txt", "content": "ok"})
            assert written.status_code == 200
        gateway.stop(signal.SIGKILL)

        with anyio.fail_after(30):  # the short one ends on time while no gateway runs
            while not (data_dir / "runs" / short / "exit.json").exists():
                await anyio.sleep(0.05)
        assert json.loads((data_dir / "runs" / short / "exit.json").read_text())["reason"] == "timeout"

        gateway = Gateway(data_dir, env_extra=dict(SANDBOX_ENV)).start()
        async with httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=60) as http:
            ended = await _status(http, short, "terminated", "failed")
            assert ended["status"] == "terminated" and ended["reason"] == "timeout"
            assert (await _status(http, keeper, "running", "terminated", "failed"))["status"] == "running"
            out = (await http.post(f"/api/sandboxes/{keeper}/exec", json={"command": ["cat", "kept.txt"]})).json()
            assert out["exitCode"] == 0 and out["stdout"] == "ok"
            # Extend after the restart: the new deadline reaches the sandbox's supervisor and is enforced.
            extended = await http.post(f"/api/sandboxes/{keeper}/extend", json={"timeout": "2s"})
            assert extended.status_code == 200, extended.text
            ended = await _status(http, keeper, "terminated", "failed")
            assert ended["status"] == "terminated" and ended["reason"] == "timeout"
    finally:
        gateway.stop()
        kill_supervisors(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.mark.usefixtures("local_only")  # on Kubernetes: tests/sandboxes/test_kubernetes.py
async def test_a_sandbox_started_by_a_closed_stdio_session_still_ends_on_time(
        sbx_gateway: Gateway, sbx_key: str, sbx_data_dir: Path) -> None:
    async with open_door("mcp-stdio", url=sbx_gateway.url, stateless_url=sbx_gateway.url, key=sbx_key,
                         data_dir=sbx_data_dir, env=dict(SANDBOX_ENV)) as stdio:
        created = await stdio.call("sandboxes_create", {"name": "from-stdio", "image": "ubuntu", "timeout": "3s"})
        sid = created.body["sandbox"]["id"]
        assert (await stdio.call("sandboxes_exec", {"sandboxId": sid, "command": ["true"]})).ok
    with anyio.fail_after(30):  # its supervisor ends it; the gateway was never told about it
        while not (sbx_data_dir / "runs" / sid / "exit.json").exists():
            await anyio.sleep(0.05)
    async with httpx.AsyncClient(base_url=sbx_gateway.url, headers={"Authorization": f"Bearer {sbx_key}"}) as http:
        ended = await _status(http, sid, "terminated", "failed")
        assert ended["status"] == "terminated" and ended["reason"] == "timeout"
