"""The leader Lease on the fake cluster (which validates every Lease it stores): one holder at a time,
takeover only after expiry, a prompt hand-over on release, and a holder that finds itself replaced
stops at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]

from k8s import lease
from k8s.client import KubeClient
from k8s.lease import LEASE_NAME, KubeLease
from k8s.sim import FakeCluster

NAMESPACE = "kubegate"
DEPLOY = Path(__file__).parents[2] / "deploy" / "kubernetes"
Make = Callable[[str], Awaitable[KubeLease]]


@pytest.fixture
async def make(cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Make]:
    # Shorter than the shipped 8 s / 2 s / 6 s so the test is quick; the same relations hold.
    monkeypatch.setattr(lease, "DURATION_SECONDS", 2)
    monkeypatch.setattr(lease, "RENEW_SECONDS", 0.3)
    monkeypatch.setattr(lease, "RENEW_DEADLINE_SECONDS", 1.2)
    monkeypatch.setattr(lease, "RETRY_SECONDS", 0.1)
    cluster.store.create("namespaces", None, {"apiVersion": "v1", "kind": "Namespace",
                                              "metadata": {"name": NAMESPACE}})
    clients: list[KubeClient] = []
    made: list[KubeLease] = []

    async def elector(identity: str) -> KubeLease:
        kube = await KubeClient.connect(cluster.kubeconfig_path)
        clients.append(kube)
        one = KubeLease(kube, NAMESPACE, identity)
        made.append(one)
        return one

    yield elector
    for one in made:
        await one.release()
    for kube in clients:
        await kube.close()


def holder(cluster: FakeCluster) -> str | None:
    [stored] = [o for o in cluster.objects("leases") if o["metadata"]["name"] == LEASE_NAME]
    value: str | None = stored["spec"].get("holderIdentity")
    return value


async def test_one_holder_and_a_prompt_hand_over_on_release(make: Make, cluster: FakeCluster) -> None:
    first, second = await make("replica-a"), await make("replica-b")
    await asyncio.wait_for(first.lead(), 10)
    waiting = asyncio.ensure_future(second.lead())
    await asyncio.sleep(1.0)  # several renewals of the first and retries of the second
    assert not waiting.done() and holder(cluster) == "replica-a" and not first.lost.is_set()
    await first.release()
    await asyncio.wait_for(waiting, 10)
    assert holder(cluster) == "replica-b"
    [stored] = cluster.objects("leases")
    assert stored["spec"]["leaseTransitions"] == 1
    assert cluster.invalid_writes == []
    # Exactly what deploy/kubernetes/rbac-leader.yaml grants, and only in the gateway's namespace.
    assert set(cluster.audit) == {(verb, "coordination.k8s.io", "leases", NAMESPACE)
                                  for verb in ("get", "create", "update")}
    role = next(yaml.safe_load_all((DEPLOY / "rbac-leader.yaml").read_text()))
    granted = {verb for rule in role["rules"] for verb in rule["verbs"]}
    assert granted == {"get", "create", "update"} and role["metadata"]["namespace"] == NAMESPACE


async def test_a_dead_holder_is_replaced_after_expiry_and_a_replaced_holder_stops(make: Make,
                                                                                  cluster: FakeCluster) -> None:
    first, second = await make("replica-a"), await make("replica-b")
    await asyncio.wait_for(first.lead(), 10)
    assert first._renewer is not None
    first._renewer.cancel()  # as if its process froze: no more renewals, no release
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(second.lead(), 10)
    assert asyncio.get_running_loop().time() - started >= 1.0  # not before the Lease had expired
    assert holder(cluster) == "replica-b"

    third = await make("replica-c")
    stored = next(o for o in cluster.objects("leases"))
    cluster.store.update("leases", NAMESPACE, LEASE_NAME,
                         lambda o: o["spec"].update(holderIdentity="replica-c"))  # someone else wrote it
    assert stored["spec"]["holderIdentity"] == "replica-b"
    await asyncio.wait_for(second.lost.wait(), 10)  # it noticed at its next renewal and stopped
    assert not third.lost.is_set()
