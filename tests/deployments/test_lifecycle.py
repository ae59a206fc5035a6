"""A deployment's life through every kind of door: template -> Ready -> URL, logs, metrics, scale, update, delete."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import anyio
import pytest

from tests.deployments.support import HTTP_SERVER, create, fetch, wait_gone, wait_served, wait_status
from tests.doors import Door, McpDoor
from tests.gateway import Gateway


async def test_example_app_from_its_template(dep_door: Door, dep_gateway: Gateway, dep_env: dict[str, str]) -> None:
    on_kubernetes = dep_env["KUBEGATE_RUNTIME"] == "kubernetes"
    created = await create(dep_door, template="hello-python", envVars={"GREETING": "Hi from the test"})
    name = created["name"]
    assert created["status"] == "Pending" and name.startswith("hello-python-") and name != "status"
    assert created["template"] == "hello-python" and created["visibility"] == "public"
    assert created["url"] == created["ingresses"][0]["url"] and f"{name}.apps.localhost" in created["url"]
    try:
        ready = await wait_status(dep_door, name, "Ready")
        assert ready["readyReplicas"] == 1 and ready.get("lastError") is None
        body = await wait_served(dep_gateway.url, created["url"], "Hi from the test")
        assert "token set" in body  # the template's secret reached the app...
        got = (await dep_door.call("deployments_get", {"name": name})).body
        token = next(e for e in got["envVars"] if e["name"] == "API_TOKEN")
        assert token["secret"] and token.get("value") is None  # ...and is never shown back
        assert "change-me" not in str(got) and "change-me" not in str(created)

        logs = await dep_door.call("deployments_logs", {"name": name, "tail": 50})
        assert logs.ok, logs.body
        assert any('"GET / HTTP/1.1" 200' in line["text"] for line in logs.body["lines"])
        # A replica is "0", "1"... locally, its Pod's name (the Deployment's, then hashes) on Kubernetes.
        first = f"{name}-" if on_kubernetes else "0"
        assert all(line["replica"].startswith(first) and line["at"].endswith("Z") for line in logs.body["lines"])
        recent = await dep_door.call("deployments_logs", {"name": name, "since": "1h", "tail": 1})
        assert len(recent.body["lines"]) == 1
        metrics = (await dep_door.call("deployments_metrics", {"name": name})).body
        assert metrics["available"] and metrics["restarts"] == 0
        usage = metrics["replicas"][0]
        assert usage["memoryBytes"] > 1 << 20
        assert usage["cpuCores"] >= 0 if on_kubernetes else usage["cpuSeconds"] > 0  # a rate there, a total here
        if isinstance(dep_door, McpDoor):
            read = await dep_door.client.read_resource(f"kubegate://deployments/{name}/logs")
            assert '"GET / HTTP/1.1" 200' in read.contents[0].text  # type: ignore[union-attr]

        scaled = await dep_door.call("deployments_scale", {"name": name, "replicas": 2})
        assert scaled.ok and scaled.body["replicas"] == 2, scaled.body
        await wait_status(dep_door, name, "Ready", ready=2)
        replicas = {line["replica"] for line in (await dep_door.call(
            "deployments_metrics", {"name": name})).body["replicas"]}
        assert len(replicas) == 2
        assert all(r.startswith(first) for r in replicas) if on_kubernetes else replicas == {"0", "1"}
        assert (await dep_door.call("deployments_scale", {"name": name, "replicas": 1})).ok
        await wait_status(dep_door, name, "Ready", ready=1)

        updated = await dep_door.call("deployments_update", {"name": name, "envVars": {"GREETING": "Updated!"}})
        assert updated.ok, updated.body
        await wait_served(dep_gateway.url, created["url"], "Updated!")
        await wait_status(dep_door, name, "Ready", ready=1)
    finally:
        deleted = await dep_door.call("deployments_delete", {"name": name})
        assert deleted.ok and deleted.body["status"] == "Deleting", deleted.body
    await wait_gone(dep_door, name)
    assert (await dep_door.call("deployments_get", {"name": name})).error_status == 404
    assert (await fetch(dep_gateway.url, created["url"])).status_code == 401


async def test_raw_image_and_port(rest: Door, dep_gateway: Gateway) -> None:
    created = await create(rest, image="python:3.12-slim", port=9000, command=HTTP_SERVER)
    assert created.get("template") is None and created["name"].startswith("python-")
    try:
        await wait_status(rest, created["name"], "Ready")
        assert "Directory listing" in await wait_served(dep_gateway.url, created["url"], "Directory listing")
    finally:
        await rest.call("deployments_delete", {"name": created["name"]})


async def test_a_crashing_app_ends_in_error_with_its_last_output(rest: Door, dep_env: dict[str, str]) -> None:
    created = await create(rest, image="busybox", port=8080, command=["sh", "-c", "echo 'cannot open db' >&2; exit 3"])
    try:
        failed = await wait_status(rest, created["name"], "Error")
        assert "exited with code 3" in failed["lastError"] and "cannot open db" in failed["lastError"]
        metrics = (await rest.call("deployments_metrics", {"name": created["name"]})).body
        # Locally Error comes after repeated crashes; on Kubernetes with CrashLoopBackOff, which a kubelet reports
        # after the first restart (the next ones come 10 s, 20 s... apart).
        assert metrics["restarts"] >= (1 if dep_env["KUBEGATE_RUNTIME"] == "kubernetes" else 3)
    finally:
        await rest.call("deployments_delete", {"name": created["name"]})


async def test_the_status_route_is_its_own(rest: Door, dep_env: dict[str, str]) -> None:
    missing = await rest.call("deployments_status", {"name": "nothing-here"})
    assert missing.error_status == 404 and "deployments_list" in missing.body["message"]
    bad = await rest.call("deployments_create", {"template": "hello-python", "image": "busybox"})
    assert bad.error_status == 400
    no_port = await rest.call("deployments_create", {"image": "busybox", "command": ["true"]})
    assert no_port.error_status == 400 and "port" in no_port.body["message"]
    too_many = await rest.call("deployments_create", {"template": "hello-python", "replicas": 50})
    assert too_many.error_status == 400 and "20" in too_many.body["message"], too_many.body
    no_command = await rest.call("deployments_create", {"image": "busybox", "port": 80})
    if dep_env["KUBEGATE_RUNTIME"] == "local":  # on Kubernetes the image's entrypoint runs
        assert no_command.error_status == 400 and "command" in no_command.body["message"]
    else:
        assert no_command.ok, no_command.body
        await rest.call("deployments_delete", {"name": no_command.body["name"]})


@pytest.mark.usefixtures("local_only")  # the local supervisor; on Kubernetes the kubelet restarts containers
async def test_a_replica_whose_supervisor_dies_is_started_again(rest: Door, dep_gateway: Gateway,
                                                                dep_data_dir: Path) -> None:
    created = await create(rest, image="busybox", port=9000, command=HTTP_SERVER)
    name = created["name"]
    try:
        await wait_status(rest, name, "Ready")
        shim = dep_data_dir / "runs" / f"app_{name}_1_0" / "shim.pid"
        os.kill(int(shim.read_text().split()[0]), signal.SIGKILL)  # the replica's whole sandbox goes with it
        with anyio.fail_after(60):
            while (await rest.call("deployments_metrics", {"name": name})).body["restarts"] < 1:
                await anyio.sleep(0.05)
        await wait_status(rest, name, "Ready")
        assert "Directory listing" in await wait_served(dep_gateway.url, created["url"], "Directory listing")
    finally:
        await rest.call("deployments_delete", {"name": name})
