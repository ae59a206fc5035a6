"""The fake cluster's Deployments: ReplicaSets, rolling updates, restarts with back-off, readiness probes."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from k8s.sim import FakeCluster
from tests.k8s.sim.app import command, free_port
from tests.processes import process_ids

NS = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}
DEPLOYMENTS = "/apis/apps/v1/namespaces/demo/deployments"


def deployment(argv: list[str], port: int, *, replicas: int = 1, path: str = "/healthz",
               env: dict[str, str] | None = None, deadline: int = 600) -> dict[str, Any]:
    container = {"name": "web", "image": "python:3.11", "command": argv, "ports": [{"containerPort": port}],
                 "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
                 "terminationMessagePolicy": "FallbackToLogsOnError",
                 "readinessProbe": {"httpGet": {"path": path, "port": port}, "periodSeconds": 1}}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "demo"},
            "spec": {"replicas": replicas, "progressDeadlineSeconds": deadline,
                     "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [container]}}}}


def condition(cluster: FakeCluster, kind: str) -> dict[str, Any] | None:
    [dep] = cluster.objects("deployments")
    return next((c for c in dep.get("status", {}).get("conditions") or [] if c["type"] == kind), None)


def ready_pods(cluster: FakeCluster) -> list[dict[str, Any]]:
    return [p for p in cluster.objects("pods", "app=web") if not p["metadata"].get("deletionTimestamp")
            and any(c["type"] == "Ready" and c["status"] == "True"
                    for c in p.get("status", {}).get("conditions") or [])]


def rolled_out(cluster: FakeCluster, replicas: int) -> bool:
    [dep] = cluster.objects("deployments")
    status = dep.get("status", {})
    complete = condition(cluster, "Progressing") or {}
    return (status.get("observedGeneration") == dep["metadata"]["generation"]
            and status.get("readyReplicas") == replicas == status.get("updatedReplicas") == status.get("replicas")
            and complete.get("reason") == "NewReplicaSetAvailable")


@pytest.fixture
async def cluster() -> Any:
    async with FakeCluster() as fake:
        fake.kubelet.backoff_base = 0.2
        yield fake
        assert fake.invalid_writes == []


async def test_a_deployment_becomes_available_scales_and_rolls_without_a_gap(cluster: FakeCluster,
                                                                              tmp_path: Path) -> None:
    port = free_port()
    async with httpx.AsyncClient(base_url=cluster.url) as http:
        await http.post("/api/v1/namespaces", json=NS)
        created = await http.post(DEPLOYMENTS, json=deployment(command(tmp_path, port), port, replicas=2))
        assert created.status_code == 201, created.text
        await cluster.wait_until(lambda: rolled_out(cluster, 2), timeout=30)
        assert condition(cluster, "Available")["status"] == "True"  # type: ignore[index]
        [first] = cluster.objects("replicasets")
        assert first["metadata"]["labels"]["pod-template-hash"] in first["metadata"]["name"]
        async with httpx.AsyncClient() as app:
            for address in addresses(cluster):
                assert (await app.get(f"http://{address}:{port}/")).text == "hello"

            patch = {"spec": {"template": {"spec": {"containers": [
                {**deployment(command(tmp_path, port), port)["spec"]["template"]["spec"]["containers"][0],
                 "env": [{"name": "GREETING", "value": "bonjour"}]}]}}}}
            changed = await http.patch(f"{DEPLOYMENTS}/web", json=patch,
                                       headers={"content-type": "application/merge-patch+json"})
            assert changed.status_code == 200 and changed.json()["metadata"]["generation"] == 2
            # During the rollout at least replicas - maxUnavailable (2 - 0) Pods stay ready.
            await cluster.wait_until(lambda: len(ready_pods(cluster)) >= 2 and rolled_out(cluster, 2)
                                     if condition(cluster, "Progressing")["reason"] != "ReplicaSetUpdated"  # type: ignore[index]
                                     else _never_below(cluster, 2), timeout=30)
            for address in addresses(cluster):
                await answers(app, f"http://{address}:{port}/", "bonjour")
        old, new = sorted(cluster.objects("replicasets"), key=lambda rs: rs["metadata"]["annotations"][
            "deployment.kubernetes.io/revision"])
        assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (0, 2)

        await http.patch(f"{DEPLOYMENTS}/web", json={"spec": {"replicas": 1}},
                         headers={"content-type": "application/merge-patch+json"})
        await cluster.wait_until(lambda: rolled_out(cluster, 1) and len(cluster.objects("pods", "app=web")) == 1,
                                 timeout=30)
        deleted = await http.delete(f"{DEPLOYMENTS}/web", params={"propagationPolicy": "Background"})
        assert deleted.status_code == 200
        await cluster.wait_until(lambda: not cluster.objects("pods") and not cluster.objects("replicasets"),
                                 timeout=30)


def addresses(cluster: FakeCluster) -> list[str]:
    return [p["status"]["podIP"] for p in ready_pods(cluster)]


async def answers(app: httpx.AsyncClient, url: str, text: str) -> None:
    """Bounded: where Pods share the host's network (not root), an old sibling may answer for a while."""
    with anyio.fail_after(20):
        while True:
            try:
                if (await app.get(url)).text == text:
                    return
            except httpx.TransportError:
                pass
            await anyio.sleep(0.05)


def _never_below(cluster: FakeCluster, replicas: int) -> bool:
    assert len(ready_pods(cluster)) >= replicas, "a rolling update left fewer ready Pods than allowed"
    return False


async def test_a_crashing_container_is_restarted_with_back_off_and_its_last_lines(cluster: FakeCluster,
                                                                                  tmp_path: Path) -> None:
    port = free_port()
    async with httpx.AsyncClient(base_url=cluster.url) as http:
        await http.post("/api/v1/namespaces", json=NS)
        await http.post(DEPLOYMENTS, json=deployment(command(tmp_path, port), port, env={"CRASH_AFTER": "0"}))

        def looping() -> bool:
            pods = cluster.objects("pods", "app=web")
            statuses = pods[0].get("status", {}).get("containerStatuses") if pods else None
            status = statuses[0] if statuses else {}
            return status.get("restartCount", 0) >= 2 and "waiting" in status.get("state", {})
        await cluster.wait_until(looping, timeout=30)
        [pod] = cluster.objects("pods", "app=web")
        status = pod["status"]["containerStatuses"][0]
        assert status["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        assert status["lastState"]["terminated"]["exitCode"] == 3
        assert "database is unreachable" in status["lastState"]["terminated"]["message"]
        assert pod["status"]["phase"] == "Running" and not ready_pods(cluster)


async def test_a_health_path_that_never_answers_exceeds_the_progress_deadline(cluster: FakeCluster,
                                                                              tmp_path: Path) -> None:
    port = free_port()
    async with httpx.AsyncClient(base_url=cluster.url) as http:
        await http.post("/api/v1/namespaces", json=NS)
        await http.post(DEPLOYMENTS, json=deployment(command(tmp_path, port), port, path="/missing", deadline=2))
        await cluster.wait_until(lambda: (condition(cluster, "Progressing") or {}).get("reason")
                                 == "ProgressDeadlineExceeded", timeout=30)
        assert condition(cluster, "Available")["status"] == "False"  # type: ignore[index]
        [pod] = cluster.objects("pods", "app=web")
        assert pod["status"]["phase"] == "Running" and not ready_pods(cluster)


async def test_deployments_and_ingresses_are_validated_strictly(cluster: FakeCluster, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=cluster.url) as http:
        await http.post("/api/v1/namespaces", json=NS)
        bad = deployment(["true"], 8080)
        bad["spec"]["selector"] = {"matchLabels": {"app": "other"}}
        assert (await http.post(DEPLOYMENTS, json=bad)).status_code == 422
        unknown = copy.deepcopy(deployment(["true"], 8080))
        unknown["spec"]["colour"] = "blue"
        assert (await http.post(DEPLOYMENTS, json=unknown)).status_code == 422
        ingress = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
                   "spec": {"rules": [{"host": "Web.Example", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                            "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}
        url = "/apis/networking.k8s.io/v1/namespaces/demo/ingresses"
        assert (await http.post(url, json=ingress)).status_code == 422
        ingress["spec"]["rules"][0]["host"] = "web.apps.example"
        assert (await http.post(url, json=ingress)).status_code == 201
    assert len(cluster.invalid_writes) == 3
    cluster.invalid_writes.clear()


async def test_a_pod_being_deleted_keeps_serving_through_its_pre_stop_sleep(cluster: FakeCluster,
                                                                            tmp_path: Path) -> None:
    port = free_port()
    manifest = deployment(command(tmp_path, port), port)
    manifest["spec"]["template"]["spec"]["containers"][0]["lifecycle"] = {"preStop": {"sleep": {"seconds": 2}}}
    async with httpx.AsyncClient(base_url=cluster.url) as http:
        await http.post("/api/v1/namespaces", json=NS)
        assert (await http.post(DEPLOYMENTS, json=manifest)).status_code == 201
        await cluster.wait_until(lambda: rolled_out(cluster, 1), timeout=30)
        [pod] = cluster.objects("pods", "app=web")
        address = pod["status"]["podIP"]
        # The Deployment goes, not just its Pod: no replacement is started to race the cluster's close.
        assert (await http.delete(f"{DEPLOYMENTS}/web")).status_code == 200
        await cluster.wait_until(lambda: all(p["metadata"].get("deletionTimestamp")
                                             for p in cluster.objects("pods", "app=web")), timeout=30)
        async with httpx.AsyncClient() as app:
            # Out of the endpoints at once, yet it still answers a request sent to it during the pause ...
            assert not ready_pods(cluster)
            assert (await app.get(f"http://{address}:{port}/")).text == "hello"
        # ... and only then is it stopped, and gone.
        await cluster.wait_until(lambda: not cluster.objects("pods", "app=web"), timeout=30)



async def test_closing_the_cluster_leaves_no_container_and_restarts_none(tmp_path: Path) -> None:
    port = free_port()
    async with FakeCluster() as fake, httpx.AsyncClient(base_url=fake.url) as http:
        fake.kubelet.backoff_base = 0.2
        await http.post("/api/v1/namespaces", json=NS)
        assert (await http.post(DEPLOYMENTS, json=deployment(command(tmp_path, port), port, replicas=2))
                ).status_code == 201
        await fake.wait_until(lambda: rolled_out(fake, 2), timeout=30)
        assert len(process_ids(str(tmp_path))) == 2
    # Killed on close, and not started again by their restartPolicy while the close went on.
    assert process_ids(str(tmp_path)) == []
