"""SIGKILL the gateway while deployments run: they keep serving, and after a restart report the right status."""

from __future__ import annotations

import shutil
import signal
import tempfile
from pathlib import Path

import anyio
import httpx

from tests.deployments.support import HTTP_SERVER, fetch, wait_served
from tests.doors import RestDoor
from tests.gateway import Gateway, mint_key
from tests.workloads import kill_supervisors


async def _status(http: httpx.AsyncClient, name: str, *wanted: str, ready: int | None = None) -> dict[str, object]:
    with anyio.fail_after(60):
        while True:
            found = (await http.get("/api/deployments/status", params={"name": name})).json()
            if found["status"] in wanted and (ready is None or found["readyReplicas"] == ready):
                return dict(found)
            await anyio.sleep(0.05)


async def test_deployments_survive_a_gateway_sigkill(dep_env: dict[str, str]) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="kubegate-dep-restart-", dir="/var/tmp"))
    key = mint_key(data_dir)
    headers = {"Authorization": f"Bearer {key}"}
    gateway = Gateway(data_dir, env_extra=dep_env).start()
    try:
        async with httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=60) as http:
            hello = (await http.post("/api/deployments", json={"template": "hello-python", "replicas": 2})).json()
            raw = (await http.post("/api/deployments", json={"image": "busybox", "port": 9000,
                                                             "command": HTTP_SERVER})).json()
            crash = (await http.post("/api/deployments", json={"image": "busybox", "port": 8080,
                                                               "command": ["sh", "-c", "echo died; exit 4"]})).json()
            await _status(http, hello["name"], "Ready", ready=2)
            await _status(http, raw["name"], "Ready")
            await _status(http, crash["name"], "Error")
            before = (await http.get(f"/api/deployments/{crash['name']}/metrics")).json()["restarts"]
        gateway.stop(signal.SIGKILL)

        gateway = Gateway(data_dir, env_extra=dep_env).start()
        async with httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=60) as http:
            await _status(http, hello["name"], "Ready", ready=2)
            await _status(http, raw["name"], "Ready")
            assert "Hello from kubegate" in await wait_served(gateway.url, hello["url"], "Hello from kubegate")
            assert "Directory listing" in await wait_served(gateway.url, raw["url"], "Directory listing")
            metrics = (await http.get(f"/api/deployments/{hello['name']}/metrics")).json()
            assert metrics["restarts"] == 0 and len(metrics["replicas"]) == 2  # the same replicas, re-attached
            failed = await _status(http, crash["name"], "Error")
            assert "exited with code 4" in str(failed["lastError"]) and "died" in str(failed["lastError"])
            after = (await http.get(f"/api/deployments/{crash['name']}/metrics")).json()["restarts"]
            # The count of restarts outlived the gateway (on Kubernetes, Error comes with the first CrashLoopBackOff).
            assert after >= before >= (1 if dep_env["KUBEGATE_RUNTIME"] == "kubernetes" else 3)

            # Still managed: an update rolls, a delete removes.
            rest = RestDoor(http)
            assert (await rest.call("deployments_update", {"name": hello["name"], "envVars": {"GREETING": "Back"}})).ok
            await wait_served(gateway.url, hello["url"], "Back")
            await _status(http, hello["name"], "Ready", ready=2)
            assert (await http.delete(f"/api/deployments/{raw['name']}")).status_code == 200
            with anyio.fail_after(30):
                while (await http.get(f"/api/deployments/{raw['name']}")).status_code != 404:
                    await anyio.sleep(0.05)
            assert (await fetch(gateway.url, raw["url"])).status_code == 401
    finally:
        gateway.stop()
        kill_supervisors(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)
