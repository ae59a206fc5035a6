"""A sandbox's objects, written through the runtime's client into the strict fake cluster, and used."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import get_args

import pytest

from k8s import client, manifests, sandboxes
from k8s.client import Kind, KubeClient
from k8s.sim import FakeCluster
from tests.k8s.test_sandbox_manifests import NAMESPACE, SPEC


@pytest.fixture
async def kube(cluster: FakeCluster) -> AsyncIterator[KubeClient]:
    client = await KubeClient.connect(cluster.kubeconfig_path)
    yield client
    await client.close()


def _running(cluster: FakeCluster) -> bool:
    return any(pod["status"].get("phase") == "Running" for pod in cluster.objects("pods"))


async def test_a_sandbox_runs_takes_exec_and_a_new_deadline_and_its_job_takes_pod_and_secret(
        cluster: FakeCluster, kube: KubeClient) -> None:
    await kube.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    job, service, policy = sandboxes.objects(SPEC, NAMESPACE, port=8080, ttl_seconds=60)
    created = await kube.create(job)
    await kube.create(sandboxes.secret(SPEC, NAMESPACE, created))
    await kube.resume_job(NAMESPACE, created["metadata"]["name"])
    stored = await kube.create(service)
    await kube.create(policy)
    name = manifests.job_name(SPEC.run_id)
    assert cluster.service_address(NAMESPACE, name, 8080) == (stored["spec"]["clusterIP"], 8080)
    await cluster.wait_until(lambda: _running(cluster))
    [pod] = cluster.objects("pods")
    container = pod["spec"]["containers"][0]["name"]
    # The Secret's env reached the container; stdout and stderr stay apart; the exit code comes back.
    outcome = await kube.exec(NAMESPACE, pod["metadata"]["name"], container,
                              ["sh", "-c", 'printf %s "$MODE"; echo no >&2; exit 2'])
    assert (outcome.stdout, outcome.stderr, outcome.exit_code) == (b"dev", b"no\n", 2)
    started = datetime.strptime(created["metadata"]["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    patch = sandboxes.deadline_patch(started, started + timedelta(hours=2))
    extended = await kube.set_job_deadline(NAMESPACE, name, patch["spec"]["activeDeadlineSeconds"])
    assert extended["spec"]["activeDeadlineSeconds"] == 7200
    assert await kube.delete_job(NAMESPACE, name)
    await cluster.wait_until(lambda: not cluster.objects("pods") and not cluster.objects("secrets"))
    assert "pw" not in json.dumps(cluster.objects("jobs") + cluster.objects("services"))  # the password: Secret only


def test_every_kind_has_its_own_calls() -> None:
    """No kind falls through to another's branch: each listed kind lists itself, each written kind is its own model."""
    assert set(get_args(Kind)) == set(client._LISTS)
    for kind, (_, method) in client._LISTS.items():
        singular = kind[:-3] + "y" if kind.endswith("ies") else kind[:-1]
        assert method.replace("_", "").startswith(f"list{singular}"), (kind, method)
    for kind, (_, stem, model) in client._TYPES.items():
        assert stem.replace("_", "") == kind.lower() and model.__name__ == f"V1{kind}", kind
