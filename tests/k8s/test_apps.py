"""Deployments on the Kubernetes runtime, against the fake cluster through the official client.

Every object the runtime writes is validated strictly (the ``cluster`` fixture fails the test
on any invalid write); Pods run as local processes, probed on their health path.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx
import pytest

from k8s import deployments
from k8s.manifests import namespace_name
from k8s.runtime import KubernetesRuntime
from k8s.sim import UNPULLABLE_REGISTRY, FakeCluster
from mcp_server.runtime.apps import apps_of
from tests.k8s.apps_support import AppEvents, app_spec, phase, ref, revised
from tests.k8s.conftest import make_settings

NAMESPACE = namespace_name("kg-", "alice@example.com")


@pytest.fixture
async def fast(cluster: FakeCluster) -> FakeCluster:
    cluster.kubelet.backoff_base = 0.2  # CrashLoopBackOff starts at 10 s on a real kubelet
    return cluster


@pytest.fixture
async def runtime(fast: FakeCluster, tmp_path: Path) -> AsyncIterator[KubernetesRuntime]:
    rt = KubernetesRuntime(make_settings(fast, tmp_path / "data", progress_deadline_seconds=3))
    yield rt
    await rt.close()


@pytest.fixture
async def app_events(runtime: KubernetesRuntime) -> AsyncIterator[AppEvents]:
    reader = AppEvents(runtime.apps)
    yield reader
    await reader.close()


async def get(cluster: FakeCluster, name: str, port: int, path: str = "/") -> str:
    host, target = cluster.service_address(NAMESPACE, deployments.object_name(name), port)
    async with httpx.AsyncClient() as http:
        return (await http.get(f"http://{host}:{target}{path}")).text


async def answers(cluster: FakeCluster, port: int, text: str) -> None:
    """Bounded: the Service may still route to the old Pod, being terminated, for a moment."""
    with anyio.fail_after(20):
        while True:
            try:
                if await get(cluster, "web", port) == text:
                    return
            except httpx.TransportError:
                pass
            await anyio.sleep(0.05)


def one(cluster: FakeCluster, resource: str) -> dict[str, object]:
    [obj] = cluster.objects(resource, f"{deployments.APP_LABEL}=web")
    return obj


async def test_an_app_is_served_scaled_updated_and_deleted(cluster: FakeCluster, runtime: KubernetesRuntime,
                                                          app_events: AppEvents, tmp_path: Path) -> None:
    assert apps_of(runtime) is runtime.apps
    spec = app_spec(tmp_path, env={"GREETING": "hello"}, secret_env={"API_TOKEN": "s3cret-value"})
    await runtime.apps.apply(spec)
    ready = await app_events.until("web", phase("Ready", ready=1))
    assert app_events.phases("web")[0] == "Pending" and "Provisioning" in app_events.phases("web")
    assert ready.ingresses[0].host == "web.apps.localhost" and ready.last_error is None
    assert await get(cluster, "web", spec.port) == "hello"

    deployment = one(cluster, "deployments")
    assert "s3cret-value" not in str(deployment) and "hello" not in str(deployment)
    secret = one(cluster, "secrets")
    assert base64.b64decode(secret["data"]["API_TOKEN"]).decode() == "s3cret-value"  # type: ignore[index]
    ingress = one(cluster, "ingresses")
    assert ingress["spec"]["rules"][0]["host"] == "web.apps.localhost"  # type: ignore[index]
    policy = one(cluster, "networkpolicies")
    assert policy["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": spec.port}]  # type: ignore[index]
    [endpoint] = await runtime.apps.endpoints(ref("web"))
    assert (endpoint.host, endpoint.port) == cluster.service_address(NAMESPACE, "web", spec.port)

    logs = await runtime.apps.read_logs(ref("web"), tail=10)
    assert any("listening on" in line.text for line in logs)
    assert await runtime.apps.read_logs(ref("web"), tail=10,
                                        since=datetime.now(UTC) + timedelta(seconds=5)) == []
    metrics = await runtime.apps.metrics(ref("web"))
    assert metrics.available and metrics.replicas[0].restarts == 0
    assert (metrics.replicas[0].memory_bytes or 0) > 1_000_000 and metrics.replicas[0].cpu_cores is not None

    await runtime.apps.apply(replace(spec, replicas=2))
    scaled = await app_events.until("web", phase("Ready", ready=2))
    assert len({r.replica for r in scaled.replica_status}) == 2
    await runtime.apps.apply(replace(spec, replicas=1))
    await app_events.until("web", lambda s: s.phase == "Ready" and len(s.replica_status) == 1)

    update = revised(spec, env={"GREETING": "bonjour"})
    await runtime.apps.apply(update)
    await app_events.until("web", phase("Ready", ready=1, revision=2))
    await answers(cluster, spec.port, "bonjour")

    await runtime.apps.delete("web")
    await app_events.gone("web")
    assert runtime.apps.status("web") is None
    for resource in ("deployments", "replicasets", "pods", "secrets", "services", "ingresses", "networkpolicies"):
        assert cluster.objects(resource, f"{deployments.APP_LABEL}=web") == [], resource


async def test_a_crashing_app_is_in_error_with_its_last_output(cluster: FakeCluster, runtime: KubernetesRuntime,
                                                              app_events: AppEvents, tmp_path: Path) -> None:
    await runtime.apps.apply(app_spec(tmp_path, env={"CRASH_AFTER": "0"}))
    failed = await app_events.until("web", phase("Error"))
    assert failed.last_error is not None and failed.last_error.startswith("CrashLoopBackOff: replica web-")
    assert "exited with code 3" in failed.last_error and "database is unreachable" in failed.last_error
    restarted = await app_events.until("web", lambda s: s.replica_status[0].restarts >= 1)
    assert restarted.phase in ("Error", "Provisioning")  # between two crashes it runs again, for a moment
    metrics = await runtime.apps.metrics(ref("web"))
    assert [r.replica for r in metrics.replicas] == [r.replica for r in failed.replica_status]
    assert metrics.replicas[0].restarts >= 1


async def test_a_bad_health_path_never_becomes_ready_and_ends_past_the_progress_deadline(
        runtime: KubernetesRuntime, app_events: AppEvents, tmp_path: Path) -> None:
    await runtime.apps.apply(app_spec(tmp_path, health_path="/no-such-page"))
    failed = await app_events.until("web", phase("Error"))
    assert failed.last_error is not None and "ProgressDeadlineExceeded" in failed.last_error
    assert "Ready" not in app_events.phases("web") and failed.ready_replicas == 0
    assert failed.replica_status[0].ready is False and failed.replica_status[0].restarts == 0


async def test_an_image_that_cannot_be_pulled_is_an_error(runtime: KubernetesRuntime, app_events: AppEvents,
                                                          tmp_path: Path) -> None:
    await runtime.apps.apply(app_spec(tmp_path, image=f"{UNPULLABLE_REGISTRY}/nope:1"))
    failed = await app_events.until("web", phase("Error"))
    assert failed.last_error is not None and failed.last_error.startswith("ImagePullBackOff: replica web-")


async def test_without_a_metrics_api_metrics_are_unavailable_but_restarts_are_told(
        cluster: FakeCluster, runtime: KubernetesRuntime, app_events: AppEvents, tmp_path: Path) -> None:
    cluster.serve_metrics(False)
    await runtime.apps.apply(app_spec(tmp_path))
    await app_events.until("web", phase("Ready", ready=1))
    metrics = await runtime.apps.metrics(ref("web"))
    assert not metrics.available and "metrics-server" in str(metrics.reason)
    assert [r.restarts for r in metrics.replicas] == [0] and metrics.replicas[0].cpu_cores is None


async def test_an_internal_app_gets_no_ingress_and_turning_public_adds_one(
        cluster: FakeCluster, runtime: KubernetesRuntime, app_events: AppEvents, tmp_path: Path) -> None:
    spec = app_spec(tmp_path, public=False)
    await runtime.apps.apply(spec)
    internal = await app_events.until("web", phase("Ready", ready=1))
    assert internal.ingresses == () and cluster.objects("ingresses") == []
    assert len(one(cluster, "networkpolicies")["spec"]["ingress"][0]["from"]) == 1  # type: ignore[index]
    await runtime.apps.apply(replace(spec, public=True))
    await cluster.wait_until(lambda: len(cluster.objects("ingresses")) == 1)
    assert len(one(cluster, "networkpolicies")["spec"]["ingress"][0]["from"]) == 2  # type: ignore[index]


async def test_after_a_restart_apps_are_recovered_recreated_and_strays_deleted(
        cluster: FakeCluster, runtime: KubernetesRuntime, app_events: AppEvents, tmp_path: Path) -> None:
    for name in ("kept", "vanished", "stray"):
        (tmp_path / name).mkdir()
    kept, vanished, stray = (app_spec(tmp_path / name, name) for name in ("kept", "vanished", "stray"))
    for spec in (kept, vanished, stray):
        await runtime.apps.apply(spec)
        await app_events.until(spec.name, phase("Ready", ready=1))
    await runtime.close()
    cluster.store.delete("deployments", NAMESPACE, "vanished", "Background")  # behind the gateway's back

    restarted = KubernetesRuntime(make_settings(cluster, tmp_path / "data"))
    events = AppEvents(restarted.apps)
    try:
        await restarted.apps.recover([kept, vanished])
        assert (await events.until("kept", phase("Ready", ready=1))).revision == 1
        await events.until("vanished", phase("Ready", ready=1))
        await events.gone("stray")
        assert restarted.apps.status("stray") is None
        await cluster.wait_until(lambda: not cluster.objects("pods", f"{deployments.APP_LABEL}=stray"), 30)
    finally:
        await events.close()
        await restarted.close()


async def test_applies_at_once_from_one_process_and_from_two_make_one_app(
        cluster: FakeCluster, runtime: KubernetesRuntime, app_events: AppEvents, tmp_path: Path) -> None:
    spec = app_spec(tmp_path, env={"GREETING": "once"})
    other = KubernetesRuntime(make_settings(cluster, tmp_path / "other"))  # another gateway process
    try:
        await asyncio.gather(runtime.apps.apply(spec), runtime.apps.apply(spec), other.apps.apply(spec))
        await app_events.until("web", phase("Ready", ready=1))
        assert len(cluster.objects("deployments")) == 1 and len(cluster.objects("secrets")) == 1
        assert await get(cluster, "web", spec.port) == "once"
    finally:
        await other.close()


async def test_a_runtime_that_does_not_keep_an_app_reads_it_from_the_cluster(
        cluster: FakeCluster, runtime: KubernetesRuntime, app_events: AppEvents, tmp_path: Path) -> None:
    spec = app_spec(tmp_path, env={"GREETING": "hello"})
    await runtime.apps.apply(spec)
    await app_events.until("web", phase("Ready", ready=1))
    generation = one(cluster, "deployments")["metadata"]["generation"]  # type: ignore[index]
    # A follower replica's runtime: it never applied the app, and reads it by the row's name alone.
    follower = KubernetesRuntime(make_settings(cluster, tmp_path / "follower"))
    try:
        [endpoint] = await follower.apps.endpoints(ref("web"))
        assert (endpoint.host, endpoint.port) == cluster.service_address(NAMESPACE, "web", spec.port)
        assert any("listening on" in line.text for line in await follower.apps.read_logs(ref("web"), tail=10))
        metrics = await follower.apps.metrics(ref("web"))
        assert metrics.available and [r.restarts for r in metrics.replicas] == [0]
        assert await follower.apps.endpoints(ref("other")) == [] and await follower.apps.read_logs(
            ref("other"), tail=10) == []
    finally:
        await follower.close()
    # Reading changed nothing, and the app outlives the reader.
    assert one(cluster, "deployments")["metadata"]["generation"] == generation  # type: ignore[index]
    assert await get(cluster, "web", spec.port) == "hello"
