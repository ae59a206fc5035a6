"""Readiness is the health path's answer: an app that answers it with 404 is never Ready, nor served."""

from __future__ import annotations

from pathlib import Path

import anyio

from tests.deployments.support import ADMIN, create, fetch
from tests.doors import open_door
from tests.gateway import Gateway, mint_key


async def test_a_bad_health_path_never_becomes_ready(dep_gateway: Gateway, dep_data_dir: Path) -> None:
    admin_key = mint_key(dep_data_dir, user=ADMIN)
    async with open_door("rest", url=dep_gateway.url, stateless_url=dep_gateway.url, key=admin_key,
                         data_dir=dep_data_dir) as admin:
        base = (await admin.call("templates_get", {"name": "static-site"})).body["template"]
        made = await admin.call("templates_create", {"name": "hello-bad-health", "image": base["image"],
                                                     "command": base["command"], "healthCheckPath": "/missing"})
        assert made.ok, made.body
        created = await create(admin, template="hello-bad-health")
        name = created["name"]
        try:
            # The site runs and answers its health path again and again: 404, as it has no /missing (the local
            # runtime's probe speaks HTTP/1.0, a kubelet's HTTP/1.1).
            with anyio.fail_after(60):
                while True:
                    lines = (await admin.call("deployments_logs", {"name": name})).body["lines"]
                    probed = ['"GET /missing HTTP/1.' in line["text"] and '" 404 ' in line["text"] for line in lines]
                    if sum(probed) >= 5:
                        break
                    await anyio.sleep(0.05)
            status = (await admin.call("deployments_status", {"name": name})).body
            assert status["status"] == "Provisioning" and status["readyReplicas"] == 0, status
            assert (await fetch(dep_gateway.url, created["url"])).status_code == 503
        finally:
            await admin.call("deployments_delete", {"name": name})
