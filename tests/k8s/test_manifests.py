"""Manifests built from a RunSpec: valid for Kubernetes 1.33, locked down, no secret inline."""

from __future__ import annotations

import re

import kubernetes_validate
import pytest

from k8s import manifests
from k8s.sim.checks import semantic_errors
from mcp_server.runtime.base import RunSpec

SPEC = RunSpec(run_id="task_Xy9_long", owner="Alice.Smith+ci@Example.com", image="python:3.11-slim",
               command=["python", "-c", "print(1)"], env={"API_TOKEN": "s3cr3t", "MODE": "fast"},
               timeout_seconds=90.4, size="medium",
               labels={"task": "build_and_test", "workflow": "workflow_abc", "step": "Unit Tests!"})
NAMESPACE = manifests.namespace_name("kg-", SPEC.owner)


def valid(resource: str, obj: dict[str, object]) -> None:
    kubernetes_validate.validate(obj, "1.33.0", strict=True)
    assert semantic_errors(resource, obj) == []


def test_every_manifest_is_valid_for_kubernetes_1_33() -> None:
    valid("namespaces", manifests.namespace(NAMESPACE, SPEC.owner))
    valid("networkpolicies", manifests.deny_egress_policy(NAMESPACE))
    valid("secrets", manifests.secret(SPEC, NAMESPACE))
    valid("jobs", manifests.job(SPEC, NAMESPACE, ttl_seconds=60))


def test_the_job_runs_once_with_the_timeout_as_deadline() -> None:
    spec = manifests.job(SPEC, NAMESPACE, ttl_seconds=60)["spec"]
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"], spec["ttlSecondsAfterFinished"]) == (0, 90, 60)
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    container = pod["containers"][0]
    assert container["resources"]["limits"] == {"cpu": "1000m", "memory": "2048Mi"}
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert {"name": "KUBEGATE_OUTPUT", "value": "/dev/termination-log"} in container["env"]


def test_the_pod_meets_the_restricted_pod_security_standard() -> None:
    pod = manifests.job(SPEC, NAMESPACE, ttl_seconds=60)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    context = pod["containers"][0]["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert manifests.namespace(NAMESPACE, SPEC.owner)["metadata"]["labels"][
        "pod-security.kubernetes.io/enforce"] == "restricted"


def test_env_values_live_only_in_the_secret() -> None:
    job = manifests.job(SPEC, NAMESPACE, ttl_seconds=60)
    assert "s3cr3t" not in str(job)
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
            if "valueFrom" in e}
    name = job["metadata"]["name"]
    assert refs == {"API_TOKEN": {"name": name, "key": "API_TOKEN"}, "MODE": {"name": name, "key": "MODE"}}
    assert manifests.secret(SPEC, NAMESPACE)["data"]["API_TOKEN"] == "czNjcjN0"


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
