"""``deploy/``: manifests valid for Kubernetes 1.33, and RBAC that grants exactly what the runtime uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml  # type: ignore[import-untyped]

from k8s.runtime import KubernetesRuntime
from k8s.sim import FakeCluster
from mcp_server.runtime.base import RunSpec
from tests.k8s.conftest import make_settings
from tests.runtime.support import Events

DEPLOY = Path(__file__).parents[2] / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_deploy_manifest_is_valid_for_kubernetes_1_33(path: Path) -> None:
    for doc in documents(path):
        kubernetes_validate.validate(doc, "1.33.0", strict=True)


def granted() -> set[tuple[str, str, str]]:
    [role] = [doc for path in MANIFESTS for doc in documents(path) if doc["kind"] == "ClusterRole"]
    return {(verb, group, resource) for rule in role["rules"] for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


def test_the_deployment_runs_one_non_root_replica_with_health_probes() -> None:
    [deployment] = [doc for path in MANIFESTS for doc in documents(path) if doc["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 1
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["KUBEGATE_RUNTIME"] == "kubernetes"


def test_the_image_serves_the_gateway_with_the_kubernetes_runtime() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert "KUBEGATE_RUNTIME=kubernetes" in dockerfile
    assert 'CMD ["kubegate", "serve", "--host", "0.0.0.0"' in dockerfile


async def test_rbac_covers_every_call_the_runtime_makes_and_nothing_more(tmp_path: Path) -> None:
    async with FakeCluster() as cluster:
        settings = make_settings(cluster, tmp_path)
        runtime = KubernetesRuntime(settings)
        events = Events(runtime)
        blocker = tmp_path / "never"
        try:
            done = RunSpec("task_done", "rbac@example.com", "busybox", ["sh", "-c", "echo ok"], env={"A": "1"})
            held = RunSpec("task_held", "rbac@example.com", "busybox",
                           ["sh", "-c", f"echo up; while [ ! -e {blocker} ]; do sleep 0.02; done"])
            await runtime.start(done)
            await runtime.start(held)
            await events.wait(done.run_id)
            assert (await events.next(held.run_id)).kind == "started"
            await runtime.cancel(held.run_id)
            await events.wait(held.run_id)
            await runtime.remove(done.run_id)
        finally:
            await events.close()
            await runtime.close()
        restarted = KubernetesRuntime(settings)
        try:
            await restarted.recover([held])
            await restarted.cancel("task_elsewhere")
        finally:
            await restarted.close()
        assert cluster.invalid_writes == []
        assert cluster.audit == granted()
