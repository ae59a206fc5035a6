"""A sandbox's Kubernetes objects: valid for 1.33, one long-lived Pod, reachable by the gateway only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import kubernetes_validate

from k8s import manifests, sandboxes
from k8s.sim.checks import semantic_errors
from mcp_server.runtime.base import RunSpec

SPEC = RunSpec(run_id="sandbox_Ab12Cd34", owner="dev@example.com", image="ubuntu:22.04", command=["unused"],
               env={"KUBEGATE_SANDBOX_PASSWORD": "pw", "MODE": "dev"}, timeout_seconds=3600, size="medium",
               labels={"sandbox": "sandbox_Ab12Cd34"})
NAMESPACE = manifests.namespace_name("kg-", SPEC.owner)
RESOURCES = {"Secret": "secrets", "Job": "jobs", "Service": "services", "NetworkPolicy": "networkpolicies"}


def test_every_object_is_valid_for_kubernetes_1_33() -> None:
    made = sandboxes.objects(SPEC, NAMESPACE, port=8080, ttl_seconds=60)
    assert [o["kind"] for o in made] == ["Job", "Service", "NetworkPolicy"]
    created = {**made[0], "metadata": {**made[0]["metadata"], "uid": "0f0e0d0c-0b0a-4909-8807-060504030201"}}
    made.append(sandboxes.secret(SPEC, NAMESPACE, created))
    for obj in made:
        kubernetes_validate.validate(obj, "1.33.0", strict=True)
        assert semantic_errors(RESOURCES[obj["kind"]], obj) == []


def test_the_pod_stays_up_until_the_deadline_and_keeps_secrets_out_of_the_spec() -> None:
    job, service, policy = sandboxes.objects(SPEC, NAMESPACE, port=8080, ttl_seconds=60)
    assert job["spec"]["activeDeadlineSeconds"] == 3600 and job["spec"]["backoffLimit"] == 0
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == sandboxes.KEEP_ALIVE and container["ports"][0]["containerPort"] == 8080
    assert "pw" not in str(job) and all("valueFrom" in e for e in container["env"] if e["name"] != "KUBEGATE_OUTPUT")
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    for selector in (service["spec"]["selector"], policy["spec"]["podSelector"]["matchLabels"]):
        assert selector.items() <= pod_labels.items()


def test_only_the_gateway_may_connect_and_only_to_the_port() -> None:
    policy = sandboxes.objects(SPEC, NAMESPACE, port=9000, ttl_seconds=60, gateway_namespace="gw")[2]
    [rule] = policy["spec"]["ingress"]
    [peer] = rule["from"]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "gw"}
    assert peer["podSelector"]["matchLabels"] == sandboxes.GATEWAY_LABELS
    assert rule["ports"] == [{"protocol": "TCP", "port": 9000}] and policy["spec"]["policyTypes"] == ["Ingress"]


def test_extend_raises_the_jobs_deadline_from_its_start() -> None:
    started = datetime(2026, 1, 1, tzinfo=UTC)
    patch = sandboxes.deadline_patch(started, started + timedelta(hours=3, seconds=0.4))
    assert patch == {"spec": {"activeDeadlineSeconds": 10800}}
