"""A sandbox on the fake cluster, served by a second gateway's runtime that did not start it (a follower
replica): exec, files, usage, its Service's address, extend and delete all come from the cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from k8s import manifests
from k8s.runtime import KubernetesRuntime
from k8s.sim import FakeCluster
from mcp_server.runtime.base import ExecRequest, RunSpec
from tests.k8s.conftest import make_settings
from tests.runtime.support import Events

OWNER = "dev@example.com"


@pytest.fixture
async def follower(cluster: FakeCluster, tmp_path: Path) -> AsyncIterator[KubernetesRuntime]:
    rt = KubernetesRuntime(make_settings(cluster, tmp_path))
    yield rt
    await rt.close()


async def test_a_runtime_that_did_not_start_a_sandbox_serves_extends_and_deletes_it(
        cluster: FakeCluster, runtime: KubernetesRuntime, events: Events, follower: KubernetesRuntime) -> None:
    spec = RunSpec("sandbox_shared", OWNER, "ubuntu:22.04", ["kubegate-agent"], timeout_seconds=600,
                   labels={"sandbox": "sandbox_shared"})
    await runtime.workloads.start(spec, port=8080)
    await events.wait("sandbox_shared", "ready")

    namespace = manifests.namespace_name("kg-", OWNER)
    name = manifests.job_name("sandbox_shared")
    # Before it has touched the cluster, the follower knows no Service: it names the one in the owner's namespace.
    endpoint = follower.workloads.endpoint("sandbox_shared", owner=OWNER)
    assert (endpoint.host, endpoint.port) == (f"{name}.{namespace}.svc", 8080)
    assert [s["metadata"]["namespace"] for s in cluster.objects("services")] == [namespace]

    ran = await follower.workloads.exec("sandbox_shared", ExecRequest(["sh", "-c", "echo hi > f; cat f"]))
    assert (ran.exit_code, ran.stdout) == (0, b"hi\n")
    await follower.workloads.write_file("sandbox_shared", "g", b"from the follower")
    assert await runtime.workloads.read_file("sandbox_shared", "g", limit=100) == b"from the follower"
    assert (await follower.workloads.stats("sandbox_shared")).processes >= 1

    await follower.workloads.extend("sandbox_shared", datetime.now(UTC) + timedelta(hours=2))
    [job] = cluster.objects("jobs")
    assert job["spec"]["activeDeadlineSeconds"] >= 7190

    await follower.remove("sandbox_shared")
    await cluster.wait_until(lambda: not cluster.objects("jobs") and not cluster.objects("services"))
    assert (await events.wait("sandbox_shared", "exited")).kind == "exited"  # the starter hears it end
