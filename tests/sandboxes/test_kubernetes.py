"""Sandboxes on the Kubernetes runtime, beyond the shared suite: their objects, and a gateway SIGKILL.

The shared suite (test_lifecycle, test_limits, test_url) runs on both runtimes; these look at the
fake cluster itself (through the official client) and at what only a cluster keeps.
"""

from __future__ import annotations

import json
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from k8s import manifests, status
from k8s.client import KubeClient
from tests.doors import open_door
from tests.gateway import Gateway, mint_key
from tests.sandboxes.support import SANDBOX_ENV, basic, create, exec_ok, host_of, wait_served, wait_status


@pytest.fixture
def kubernetes_only(sbx_env: dict[str, str]) -> None:
    if sbx_env["KUBEGATE_RUNTIME"] != "kubernetes":
        pytest.skip("Kubernetes runtime only")


@pytest.fixture
async def kube(fake_cluster: Path) -> AsyncIterator[KubeClient]:
    client = await KubeClient.connect(fake_cluster)
    yield client
    await client.close()


async def _objects(kube: KubeClient, sid: str) -> dict[str, list[dict[str, Any]]]:
    selector = f"{manifests.RUN_LABEL}={manifests.label_value(sid)}"
    return {kind: (await kube.list(kind, selector))[0] for kind in ("jobs", "pods", "services", "networkpolicies")}


@pytest.mark.usefixtures("kubernetes_only")
async def test_a_sandbox_is_a_job_behind_a_service_and_a_policy_and_they_go_with_it(
        sbx_gateway: Gateway, sbx_key: str, sbx_data_dir: Path, sbx_env: dict[str, str], kube: KubeClient) -> None:
    async with open_door("mcp-stdio", url=sbx_gateway.url, stateless_url=sbx_gateway.url, key=sbx_key,
                         data_dir=sbx_data_dir, env=sbx_env) as stdio:
        # Made by a `kubegate stdio` process: the serving gateway learns its Service from its watch.
        created = await create(stdio, "k8s-web", timeout="10m")
        sid, password = created["id"], created["credentials"]["password"]
        await wait_status(stdio, sid, "running")
        await exec_ok(stdio, sid, "echo from-pod > index.html; nohup python3 -m http.server 8080 >/dev/null 2>&1 &")
        objects = await _objects(kube, sid)
        assert [len(objects[kind]) for kind in objects] == [1, 1, 1, 1]
        job = objects["jobs"][0]
        for kind in ("services", "networkpolicies"):
            assert objects[kind][0]["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
        assert password not in json.dumps(objects)  # only in the Secret
        served = await wait_served(sbx_gateway.url, created["url"], password)
        assert served.status_code == 200 and served.text == "from-pod\n"
        deleted = await stdio.call("sandboxes_delete", {"sandboxId": sid})
        assert deleted.ok
    with anyio.fail_after(30):
        while any((await _objects(kube, sid)).values()):
            await anyio.sleep(0.1)
    async with httpx.AsyncClient(base_url=sbx_gateway.url) as http:
        gone = await http.get("/", headers={"Host": host_of(created["url"]), "Authorization": basic(password)})
    assert gone.status_code == 401  # no live sandbox by that name any more


async def _status(http: httpx.AsyncClient, sid: str, *wanted: str) -> dict[str, Any]:
    with anyio.fail_after(60):
        while True:
            response = await http.get(f"/api/sandboxes/{sid}")
            assert response.status_code == 200, response.text
            if (sandbox := response.json()["sandbox"])["status"] in wanted:
                return dict(sandbox)
            await anyio.sleep(0.2)


async def test_sandboxes_on_kubernetes_survive_a_gateway_sigkill(fake_cluster: Path, kube: KubeClient) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="kubegate-sbx-k8s-restart-", dir="/var/tmp"))
    env = {**SANDBOX_ENV, "KUBEGATE_RUNTIME": "kubernetes", "KUBEGATE_KUBECONFIG": str(fake_cluster)}
    headers = {"Authorization": f"Bearer {mint_key(data_dir, user='k8s-restart@example.test')}"}
    gateway = Gateway(data_dir, env_extra=env).start()
    try:
        async with httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=60) as http:
            async def start(name: str, timeout: str) -> str:
                response = await http.post("/api/sandboxes", json={"name": name, "image": "ubuntu", "timeout": timeout})
                assert response.status_code == 201, response.text
                return str(response.json()["sandbox"]["id"])

            keeper, short = await start("keeper", "10m"), await start("short", "4s")
            for sid in (keeper, short):
                await _status(http, sid, "running")
            written = await http.post(f"/api/sandboxes/{keeper}/files", json={"path": "kept.txt", "content": "ok"})
            assert written.status_code == 200
        gateway.stop(signal.SIGKILL)

        with anyio.fail_after(30):  # the cluster ends the short one on time while no gateway runs
            while not (jobs := (await _objects(kube, short))["jobs"]) or status.job_end(jobs[0]) is None:
                await anyio.sleep(0.1)
        assert status.job_end(jobs[0]).reason == "DeadlineExceeded"  # type: ignore[union-attr]

        gateway = Gateway(data_dir, env_extra=env).start()
        async with httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=60) as http:
            ended = await _status(http, short, "terminated", "failed")
            assert ended["status"] == "terminated" and ended["reason"] == "timeout"
            assert (await _status(http, keeper, "running", "terminated", "failed"))["status"] == "running"
            out = (await http.post(f"/api/sandboxes/{keeper}/exec", json={"command": ["cat", "kept.txt"]})).json()
            assert out["exitCode"] == 0 and out["stdout"] == "ok"
            # Extended after the restart: the Job's new deadline is the cluster's to enforce.
            extended = await http.post(f"/api/sandboxes/{keeper}/extend", json={"timeout": "2s"})
            assert extended.status_code == 200, extended.text
            ended = await _status(http, keeper, "terminated", "failed")
            assert ended["status"] == "terminated" and ended["reason"] == "timeout"
    finally:
        gateway.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
