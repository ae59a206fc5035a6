"""The objects of one deployment (pure builders): valid for Kubernetes 1.33, restricted, env only in the Secret."""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from k8s import deployments
from k8s.manifests import Placement
from k8s.policy import NamespacePolicy
from mcp_server.config import Settings
from mcp_server.runtime.apps import AppResources, AppSpec

SPEC = AppSpec(name="shop-1a2b", owner="alice@example.com", image="ghcr.io/acme/shop:2", port=8081,
               command=("python3", "app.py"), env={"MODE": "prod"}, secret_env={"DB_PASSWORD": "hunter2"},
               health_path="/healthz", replicas=3, revision=4,
               resources=AppResources("250m", "1", "256Mi", "1Gi"))
OWNER = {"metadata": {"name": "shop-1a2b", "uid": "0b5e4c0e-6f1a-4d8e-9c1a-0c7d3a4f5e6b"}}


def objects(spec: AppSpec = SPEC) -> list[dict[str, Any]]:
    made = [deployments.deployment(spec, "kg-alice", replicas=0, progress_deadline=120),
            deployments.secret(spec, "kg-alice", OWNER), deployments.service(spec, "kg-alice", OWNER),
            deployments.ingress_policy(spec, "kg-alice", OWNER, ingress_namespace="ingress-nginx")]
    if spec.public:
        made.append(deployments.ingress(spec, "kg-alice", OWNER, domain="apps.example.com", ingress_class="nginx"))
    return made


@pytest.mark.parametrize("obj", objects(), ids=lambda o: o["kind"])
def test_every_object_is_valid_for_kubernetes_1_33(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, "1.33.0", strict=True)


def test_the_deployment_is_restricted_probed_and_sized_from_the_template() -> None:
    deployment = objects()[0]
    assert deployment["spec"]["replicas"] == 0 and deployment["spec"]["progressDeadlineSeconds"] == 120
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] and pod["automountServiceAccountToken"] is False
    [container] = pod["containers"]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": 8081, "scheme": "HTTP"}
    # A Pod being deleted serves what was sent to it before it stops (no binary needed in the image).
    assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": deployments.DRAIN_SECONDS}}}
    assert deployments.DRAIN_SECONDS < pod.get("terminationGracePeriodSeconds", 30)
    assert container["resources"]["requests"]["cpu"] == "250m" and container["resources"]["limits"]["memory"] == "1Gi"
    assert container["command"] == ["python3", "app.py"]  # overrides the image's entrypoint
    assert deployment["spec"]["template"]["metadata"]["annotations"][deployments.REVISION_ANNOTATION] == "4"
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_env_values_live_only_in_the_secret_owned_by_the_deployment() -> None:
    deployment, secret, *rest = objects()
    assert "hunter2" not in str(deployment) and "prod" not in str(deployment) and "hunter2" not in str(rest)
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in deployment["spec"]["template"]["spec"][
        "containers"][0]["env"]}
    assert refs == {"DB_PASSWORD": {"name": "shop-1a2b", "key": "DB_PASSWORD"},
                    "MODE": {"name": "shop-1a2b", "key": "MODE"}}
    assert base64.b64decode(secret["data"]["DB_PASSWORD"]) == b"hunter2"
    for owned in (secret, *rest):
        assert owned["metadata"]["ownerReferences"][0]["kind"] == "Deployment"


def test_a_public_app_gets_an_ingress_on_its_host_and_an_internal_one_none() -> None:
    ingress = objects()[-1]
    assert ingress["kind"] == "Ingress" and ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["rules"][0]["host"] == "shop-1a2b.apps.example.com"
    internal = AppSpec(name="9lives", owner="bob", image="nginx", port=80, public=False)
    made = objects(internal)
    assert [o["kind"] for o in made] == ["Deployment", "Secret", "Service", "NetworkPolicy"]
    assert made[2]["metadata"]["name"] == deployments.object_name("9lives") != "9lives"  # a Service needs a letter
    [peer] = made[3]["spec"]["ingress"][0]["from"]  # the gateway only, not the ingress controller
    assert peer["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "kubegate"}}
    for obj in made:
        kubernetes_validate.validate(obj, "1.33.0", strict=True)


def test_placement_applies_to_the_pods() -> None:
    placed = deployments.deployment(SPEC, "kg-alice", placement=Placement(runtime_class="gvisor"))
    assert placed["spec"]["template"]["spec"]["runtimeClassName"] == "gvisor" and placed["spec"]["replicas"] == 3


def _egress_allowed(pod_labels: dict[str, str]) -> bool:
    """Whether the namespace's policies (deny all, then allow network by label) let these Pods reach out."""
    settings = Settings(data_dir=Path("/nonexistent"))
    allow = NamespacePolicy.from_settings(settings).allow_network("kg-alice")
    wanted = allow["spec"]["podSelector"]["matchLabels"]
    return "Egress" in allow["spec"]["policyTypes"] and all(pod_labels.get(k) == v for k, v in wanted.items())


def test_network_decides_egress_as_the_namespace_policy_reads_it() -> None:
    for network in (True, False):
        spec = replace(SPEC, network=network)
        pod = deployments.deployment(spec, "kg-alice", replicas=0, progress_deadline=120)["spec"]["template"]
        assert _egress_allowed(pod["metadata"]["labels"]) is network
        policy = deployments.ingress_policy(spec, "kg-alice", OWNER, ingress_namespace="ingress-nginx")
        assert policy["spec"]["policyTypes"] == ["Ingress"]  # egress stays the namespace's to decide
    assert AppSpec(name="a", owner="o", image="i", port=1).network is False  # only when asked, as for runs
