"""Manifests built from a RunSpec and the settings: valid for Kubernetes 1.33, locked down, no secret inline."""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest

from k8s import manifests
from k8s.policy import NamespacePolicy, tolerations
from k8s.sim.checks import semantic_errors
from mcp_server.config import Settings
from mcp_server.runtime.base import RunSpec

SPEC = RunSpec(run_id="task_Xy9_long", owner="Alice.Smith+ci@Example.com", image="python:3.11-slim",
               command=["python", "-c", "print(1)"], env={"API_TOKEN": "s3cr3t", "MODE": "fast"},
               timeout_seconds=90.4, size="medium",
               labels={"task": "build_and_test", "workflow": "workflow_abc", "step": "Unit Tests!"})
NAMESPACE = manifests.namespace_name("kg-", SPEC.owner)
POLICY = NamespacePolicy.from_settings(Settings(data_dir=Path("/nonexistent")))
JOB = {"metadata": {"name": "task-xy9-long", "uid": "0f0e0d0c-0000-4000-8000-000000000001"}}


def valid(resource: str, obj: dict[str, object]) -> None:
    kubernetes_validate.validate(obj, "1.33.0", strict=True)
    assert semantic_errors(resource, obj) == []


def test_every_manifest_is_valid_for_kubernetes_1_33() -> None:
    valid("namespaces", POLICY.namespace(NAMESPACE, SPEC.owner, manifests.label_value(SPEC.owner)))
    for obj in POLICY.objects(NAMESPACE):
        valid(obj["kind"].lower() + "s", obj)
    valid("secrets", manifests.secret(SPEC, NAMESPACE, JOB))
    placement = manifests.Placement(runtime_class="gvisor", node_selector={"pool": "untrusted"},
                                    tolerations=tuple(tolerations("dedicated=untrusted:NoSchedule")),
                                    user_namespaces=True)
    valid("jobs", manifests.job(SPEC, NAMESPACE, ttl_seconds=60, placement=placement))


def test_the_job_starts_suspended_runs_once_with_the_timeout_as_deadline() -> None:
    spec = manifests.job(SPEC, NAMESPACE, ttl_seconds=60)["spec"]
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"], spec["ttlSecondsAfterFinished"]) == (0, 90, 60)
    assert spec["suspend"] is True
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    container = pod["containers"][0]
    assert container["resources"]["limits"] == {"cpu": "1000m", "memory": "2048Mi", "ephemeral-storage": "4096Mi"}
    assert container["resources"]["requests"] == container["resources"]["limits"]
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert {"name": "KUBEGATE_OUTPUT", "value": "/dev/termination-log"} in container["env"]


def test_eviction_and_preemption_fail_the_job_by_policy_not_as_exit_137() -> None:
    rules = manifests.job(SPEC, NAMESPACE, ttl_seconds=60)["spec"]["podFailurePolicy"]["rules"]
    assert rules == [{"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]


def test_mesh_sidecar_injection_is_opted_out() -> None:
    template = manifests.job(SPEC, NAMESPACE, ttl_seconds=60)["spec"]["template"]
    assert template["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"
    assert template["metadata"]["annotations"]["linkerd.io/inject"] == "disabled"


def test_placement_settings_reach_the_pod_and_are_absent_by_default() -> None:
    bare = manifests.job(SPEC, NAMESPACE, ttl_seconds=60)["spec"]["template"]["spec"]
    assert not {"runtimeClassName", "nodeSelector", "tolerations", "hostUsers"} & set(bare)
    placement = manifests.Placement(runtime_class="kata", node_selector={"pool": "untrusted"},
                                    tolerations=tuple(tolerations("dedicated=untrusted:NoSchedule,gpu:NoExecute")),
                                    user_namespaces=True)
    pod = manifests.job(SPEC, NAMESPACE, ttl_seconds=60, placement=placement)["spec"]["template"]["spec"]
    assert (pod["runtimeClassName"], pod["nodeSelector"], pod["hostUsers"]) == ("kata", {"pool": "untrusted"}, False)
    assert pod["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "untrusted", "effect": "NoSchedule"},
        {"key": "gpu", "operator": "Exists", "effect": "NoExecute"}]
    with pytest.raises(ValueError, match="TOLERATIONS"):
        tolerations("dedicated=untrusted")


def test_the_pod_meets_the_restricted_pod_security_standard_which_the_namespace_enforces() -> None:
    pod = manifests.job(SPEC, NAMESPACE, ttl_seconds=60)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    context = pod["containers"][0]["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    labels = POLICY.namespace(NAMESPACE, SPEC.owner, "alice")["metadata"]["labels"]
    for mode in ("enforce", "warn", "audit"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
        assert labels[f"pod-security.kubernetes.io/{mode}-version"] == "v1.33"


def test_network_runs_reach_dns_and_the_internet_but_not_the_cluster_or_metadata() -> None:
    deny, allow = POLICY.deny_all(NAMESPACE)["spec"], POLICY.allow_network(NAMESPACE)["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert allow["podSelector"] == {"matchLabels": {"kubegate.dev/network": "allowed"}}
    assert allow["policyTypes"] == ["Egress"]  # never ingress: nothing may reach a run
    dns, internet = allow["egress"]
    assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    assert {p["port"] for p in dns["ports"]} == {53}
    v4, v6 = (block["ipBlock"] for block in internet["to"])
    assert v4["cidr"] == "0.0.0.0/0" and {"10.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12"} <= set(v4["except"])
    assert v6["cidr"] == "::/0" and "fe80::/10" in v6["except"]


def test_the_egress_exceptions_and_quota_come_from_settings() -> None:
    settings = Settings(data_dir=Path("/nonexistent"), egress_except="10.96.0.0/12,169.254.169.254/32",
                        quota="pods=2,requests.cpu=1")
    policy = NamespacePolicy.from_settings(settings)
    v4 = policy.allow_network("ns")["spec"]["egress"][1]["to"][0]["ipBlock"]
    assert v4["except"] == ["10.96.0.0/12", "169.254.169.254/32"]
    assert policy.resource_quota("ns")["spec"]["hard"] == {"pods": "2", "requests.cpu": "1"}


def test_the_role_binding_names_the_runner_role_and_the_gateway_account() -> None:
    binding = POLICY.role_binding(NAMESPACE)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": "kubegate-runner"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kubegate", "namespace": "kubegate"}]


def test_env_values_live_only_in_a_secret_owned_by_the_job_without_block_owner_deletion() -> None:
    job = manifests.job(SPEC, NAMESPACE, ttl_seconds=60)
    assert "s3cr3t" not in str(job)
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
            if "valueFrom" in e}
    name = job["metadata"]["name"]
    assert refs == {"API_TOKEN": {"name": name, "key": "API_TOKEN"}, "MODE": {"name": name, "key": "MODE"}}
    secret = manifests.secret(SPEC, NAMESPACE, JOB)
    assert secret["data"]["API_TOKEN"] == "czNjcjN0"
    [owner] = secret["metadata"]["ownerReferences"]
    assert owner["uid"] == JOB["metadata"]["uid"] and "blockOwnerDeletion" not in owner


def test_labels_select_the_run_and_carry_the_spec_labels_sanitized() -> None:
    labels = manifests.job(SPEC, NAMESPACE, ttl_seconds=60)["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "kubegate"
    assert labels["kubegate.dev/run"] == "task_Xy9_long"
    assert labels["kubegate.dev/task"] == "build_and_test"
    assert re.fullmatch(r"Unit-Tests-[0-9a-f]{8}", labels["kubegate.dev/step"])
    assert labels["kubegate.dev/owner"] != SPEC.owner  # '@' and '+' are not allowed in label values


@pytest.mark.parametrize("owner", ["a@b.c", "x" * 200, "UPPER_lower", "---", "é日本"])
def test_namespace_names_are_stable_dns_labels_unique_per_owner(owner: str) -> None:
    name = manifests.namespace_name("kg-", owner)
    assert re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", name)
    assert name == manifests.namespace_name("kg-", owner)
    assert name != manifests.namespace_name("kg-", owner + "2")


def test_owners_differing_only_by_characters_lost_in_the_slug_get_different_namespaces() -> None:
    assert manifests.namespace_name("kg-", "a.b@x") != manifests.namespace_name("kg-", "a-b@x")


@pytest.mark.parametrize("value", ["task_1", "a" * 63, "a" * 64, "-x-", "with space", "", "x/y"])
def test_label_values_are_always_valid(value: str) -> None:
    assert re.fullmatch(r"([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?", manifests.label_value(value))


@pytest.mark.parametrize("run_id", ["task_abc", "workflow_1.step-2", "UPPER", "x" * 80])
def test_job_names_are_dns_labels(run_id: str) -> None:
    assert re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", manifests.job_name(run_id))
