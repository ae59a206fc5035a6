"""``deployments_get`` lists each replica's state, from what the runtime reports (the agent or the Pods)."""

from __future__ import annotations

from typing import Any

from tests.deployments.support import HTTP_SERVER, create, wait_status
from tests.doors import Door


async def _replicas(door: Door, name: str) -> list[dict[str, Any]]:
    got = await door.call("deployments_get", {"name": name})
    assert got.ok, got.body
    return sorted(got.body["replicaStatus"], key=lambda r: r["replica"])


async def test_get_lists_each_replica_ready_or_crashing(rest: Door) -> None:
    serving = await create(rest, image="busybox", port=9000, command=HTTP_SERVER, replicas=2)
    crashing = await create(rest, image="busybox", port=8080, command=["sh", "-c", "echo no db >&2; exit 3"])
    try:
        await wait_status(rest, serving["name"], "Ready", ready=2)
        replicas = await _replicas(rest, serving["name"])
        assert len(replicas) == 2 and len({r["replica"] for r in replicas}) == 2, replicas
        for replica in replicas:
            assert replica["ready"] is True and replica["restarts"] == 0 and replica.get("lastError") is None
            assert replica["revision"] == 1 and replica["startedAt"][:19] >= serving["createdAt"][:19], replica
        listed = (await rest.call("deployments_list", {})).body["deployments"]
        assert all("replicaStatus" not in item for item in listed)  # lean lists: only get has them

        await wait_status(rest, crashing["name"], "Error")
        [failing] = await _replicas(rest, crashing["name"])
        assert failing["ready"] is False and failing["restarts"] >= 1, failing
        assert "exited with code 3" in failing["lastError"] and "no db" in failing["lastError"], failing
    finally:
        for made in (serving, crashing):
            await rest.call("deployments_delete", {"name": made["name"]})
