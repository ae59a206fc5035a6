"""The deployments repository on every backend: quota, status filter, env with secrets, status writes, delete."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mcp_server.errors import Forbidden
from mcp_server.ids import stamp
from mcp_server.store.deployments import DeploymentRecord
from mcp_server.store.stores import Stores
from mcp_server.store.templates import EnvVar


def _record(user: str, name: str) -> DeploymentRecord:
    now = stamp()
    return DeploymentRecord(
        name=name, user_id=user, template="hello", template_version=2, image="python:3.12-slim", port=8080,
        command=("python3", "-m", "http.server"), health_path="/healthz", cpu_request="100m", cpu_limit="500m",
        memory_request="128Mi", memory_limit="512Mi", replicas=1, visibility="public", revision=1, status="Pending",
        ready_replicas=0, last_error=None, created_at=now, updated_at=now,
        env=(EnvVar("GREETING", "hi"), EnvVar("TOKEN", "s3cret", secret=True)),
    )


async def test_deployments_round_trip_on_every_backend(stores: Stores) -> None:
    user = (await stores.users.ensure("d@example.test")).id
    repo = stores.deployments
    await repo.insert(_record(user, "app-one"), max_per_user=2)
    await repo.insert(_record(user, "app-two"), max_per_user=2)
    with pytest.raises(Forbidden, match="KUBEGATE_MAX_DEPLOYMENTS_PER_USER"):
        await repo.insert(_record(user, "app-three"), max_per_user=2)

    stored = await repo.get(user, "app-one")
    assert stored is not None and stored.template_version == 2 and stored.health_path == "/healthz"
    assert stored.command == ("python3", "-m", "http.server") and stored.env[1] == EnvVar("TOKEN", "s3cret", True)
    assert await repo.get("someone-else", "app-one") is None
    bare = await repo.by_name("app-one", env=False)
    assert bare is not None and bare.env == ()

    assert await repo.set_status("app-one", "Ready", 1, None, stamp())
    assert [r.name for r in await repo.list(user, "Ready")] == ["app-one"]
    assert {r.name for r in await repo.list(user, None)} == {"app-one", "app-two"}

    assert await repo.scale("app-one", 3, stamp())
    changed = replace(stored, replicas=1, revision=2, env=(EnvVar("GREETING", "bye"),), status="Pending")
    assert await repo.replace(changed, revision=1)  # an update never writes the replicas: a scale meanwhile stays
    again = await repo.get(user, "app-one")
    assert again is not None and again.replicas == 3 and again.revision == 2
    assert again.env == (EnvVar("GREETING", "bye"),)
    assert again.status == "Ready"  # what the keeper observed is not overwritten by a spec change
    # Another change made from the same revision 1 (on another replica, say) lost the race: nothing is written.
    assert not await repo.replace(replace(stored, image="other:1", revision=2), revision=1)
    assert sorted(await repo.versions()) == [("app-one", 2, 3, "Ready"), ("app-two", 1, 1, "Pending")]

    await repo.mark_deleting("app-one", stamp())
    assert not await repo.replace(replace(again, image="other:2"), revision=2)  # nor once it is being deleted
    assert not await repo.scale("app-one", 1, stamp())
    assert not await repo.set_status("app-one", "Ready", 1, None, stamp())  # a deleting one keeps saying so
    await repo.delete("app-one")
    assert await repo.by_name("app-one") is None
    assert [r.name for r in await repo.all()] == ["app-two"]
