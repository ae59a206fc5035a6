"""A deployment made through ``kubegate stdio`` beside the gateway: the gateway alone keeps it, both serve it."""

from __future__ import annotations

from pathlib import Path

import anyio

from tests.deployments.support import create, wait_gone, wait_served, wait_status
from tests.doors import Door, open_door
from tests.gateway import Gateway


async def test_stdio_and_the_gateway_keep_one_deployment(rest: Door, dep_gateway: Gateway, dep_key: str,
                                                         dep_data_dir: Path, dep_env: dict[str, str]) -> None:
    async with open_door("mcp-stdio", url=dep_gateway.url, stateless_url=dep_gateway.url, key=dep_key,
                         data_dir=dep_data_dir, env=dep_env) as stdio:
        created = await create(stdio, template="hello-python")
        name = created["name"]
        await wait_status(stdio, name, "Ready")
        await wait_served(dep_gateway.url, created["url"], "Hello from kubegate")  # the gateway takes it over

        assert (await rest.call("deployments_scale", {"name": name, "replicas": 2})).ok
        await wait_status(stdio, name, "Ready", ready=2)
        assert (await rest.call("deployments_update", {"name": name, "envVars": {"GREETING": "Both"}})).ok
        await wait_served(dep_gateway.url, created["url"], "Both")
        await wait_status(rest, name, "Ready", ready=2)

        assert (await rest.call("deployments_delete", {"name": name})).ok
        await wait_gone(stdio, name)
        runs = dep_data_dir / "runs"
        with anyio.fail_after(30):  # locally, no replica's run is left (on Kubernetes the objects' owner takes them)
            while dep_env["KUBEGATE_RUNTIME"] == "local" and any(p.name.startswith(f"app_{name}_")
                                                                 for p in runs.iterdir()):
                await anyio.sleep(0.05)
        assert (await stdio.call("deployments_status", {"name": name})).error_status == 404
