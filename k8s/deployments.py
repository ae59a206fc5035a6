"""Pure functions from an ``AppSpec`` to the Kubernetes objects that serve one deployment.

A deployment is an ``apps/v1`` Deployment (readiness probe on the health path, resources from
the template, the restricted securityContext of runs), a Secret holding its env (referenced by
key, so values never appear in the Deployment), a ClusterIP Service in front of its port, a
NetworkPolicy that lets in only the gateway and, when public, the ingress controller (egress is the
namespace's: the Pods' ``network`` label says whether they may reach out), and, when
public, an Ingress on ``{name}.{domain}``. Everything but the Deployment is owned by it, so one
delete (background propagation) removes it all.

The Deployment is created with zero replicas, its Secret next (owned by it), then scaled: no Pod
ever starts before its env exists, as with a run's suspended Job. The pod template carries a
``revision``, so a new revision (image, command, env...) rolls the Pods.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

from k8s.manifests import NONROOT_UID, Placement, dns_name, label_value
from k8s.policy import EPHEMERAL_MIB, MANAGED_BY, MANAGER, NETWORK_LABEL, OWNER_ANNOTATION, OWNER_LABEL
from k8s.sandboxes import GATEWAY_LABELS, GATEWAY_NAMESPACE
from mcp_server.runtime.apps import AppSpec

Manifest = dict[str, Any]

APP_LABEL = "kubegate.dev/deployment"
APP_ANNOTATION = "kubegate.dev/deployment"
REVISION_ANNOTATION = "kubegate.dev/revision"
NO_PLACEMENT = Placement()
CONTAINER = "app"
DRAIN_SECONDS = 5
"""How long a Pod being deleted keeps serving before SIGTERM (its ``preStop`` sleep); within the 30 s grace."""
"""The app's container; status, logs and metrics are read from it by name (a mesh may inject others)."""
PORT_NAME = "http"
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
SCRATCH = f"{EPHEMERAL_MIB['small']}Mi"
"""Scratch disk per replica: the namespace's quota requires an ephemeral-storage request and limit."""


def object_name(name: str) -> str:
    """Deployment, Secret, Service, NetworkPolicy and Ingress name: a DNS-1035 label (Services need a letter first)."""
    return name if _DNS_1035.match(name) else dns_name("app-", name)


def host(spec: AppSpec, domain: str) -> str:
    return spec.host or f"{spec.name}.{domain}"


def labels(spec: AppSpec) -> dict[str, str]:
    return {MANAGED_BY: MANAGER, OWNER_LABEL: label_value(spec.owner), APP_LABEL: label_value(spec.name)}


def pod_labels(spec: AppSpec) -> dict[str, str]:
    """The namespace denies all egress but to Pods labelled ``network=allowed`` (``k8s.policy``), as for runs."""
    return {**labels(spec), NETWORK_LABEL: "allowed" if spec.network else "none"}


def selector(spec: AppSpec) -> dict[str, str]:
    return {APP_LABEL: label_value(spec.name)}


def _meta(spec: AppSpec, namespace: str) -> Manifest:
    return {"name": object_name(spec.name), "namespace": namespace, "labels": labels(spec),
            "annotations": {APP_ANNOTATION: spec.name, OWNER_ANNOTATION: spec.owner}}


def env(spec: AppSpec) -> dict[str, str]:
    """Every env value, plain and secret alike: all of it reaches the app through the Secret only."""
    return {**spec.env, **spec.secret_env}


def _container(spec: AppSpec, secret_name: str) -> Manifest:
    limits = spec.resources
    refs = [{"name": key, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}}
            for key in sorted(env(spec))]
    container: Manifest = {
        "name": CONTAINER,
        "image": spec.image,
        "ports": [{"name": PORT_NAME, "containerPort": spec.port, "protocol": "TCP"}],
        "env": refs,
        "resources": {
            "requests": {"cpu": limits.cpu_request, "memory": limits.memory_request, "ephemeral-storage": SCRATCH},
            "limits": {"cpu": limits.cpu_limit, "memory": limits.memory_limit, "ephemeral-storage": SCRATCH},
        },
        "readinessProbe": {
            "httpGet": {"path": spec.health_path, "port": spec.port, "scheme": "HTTP"},
            "periodSeconds": 2, "timeoutSeconds": 2, "successThreshold": 1, "failureThreshold": 3,
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
        # A Pod being deleted leaves the Service's endpoints while its containers are told to stop; the
        # pause keeps it answering the requests already sent to it (and those of proxies and ingress
        # controllers that have not yet seen it go). The ``sleep`` action needs no binary in the image.
        "lifecycle": {"preStop": {"sleep": {"seconds": DRAIN_SECONDS}}},
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if spec.command:
        container["command"] = list(spec.command)  # overrides the image's entrypoint
    return container


def deployment(spec: AppSpec, namespace: str, *, placement: Placement = NO_PLACEMENT,
               replicas: int | None = None, progress_deadline: int = 600) -> Manifest:
    """The Deployment; ``replicas=0`` at creation, until its Secret exists (``scale`` then sets them)."""
    meta = _meta(spec, namespace)
    pod: Manifest = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": NONROOT_UID, "runAsGroup": NONROOT_UID,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [_container(spec, meta["name"])],
    }
    placement.apply(pod)
    template_annotations = {**meta["annotations"], REVISION_ANNOTATION: str(spec.revision)}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": spec.replicas if replicas is None else replicas,
            "selector": {"matchLabels": selector(spec)},
            "progressDeadlineSeconds": progress_deadline,
            "revisionHistoryLimit": 3,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {"metadata": {"labels": pod_labels(spec), "annotations": template_annotations}, "spec": pod},
        },
    }


def owner_reference(created: Mapping[str, Any]) -> Manifest:
    meta = created["metadata"]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": meta["name"], "uid": meta["uid"],
            "controller": True}


def _owned(spec: AppSpec, namespace: str, created: Mapping[str, Any]) -> Manifest:
    meta = _meta(spec, namespace)
    meta["ownerReferences"] = [owner_reference(created)]
    return meta


def secret(spec: AppSpec, namespace: str, created: Mapping[str, Any]) -> Manifest:
    data = {key: base64.b64encode(value.encode()).decode() for key, value in env(spec).items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": _owned(spec, namespace, created), "type": "Opaque",
            "data": data}


def service(spec: AppSpec, namespace: str, created: Mapping[str, Any]) -> Manifest:
    return {"apiVersion": "v1", "kind": "Service", "metadata": _owned(spec, namespace, created),
            "spec": {"type": "ClusterIP", "selector": selector(spec),
                     "ports": [{"name": PORT_NAME, "port": spec.port, "targetPort": spec.port, "protocol": "TCP"}]}}


def ingress_policy(spec: AppSpec, namespace: str, created: Mapping[str, Any], *, ingress_namespace: str,
                   gateway_namespace: str = GATEWAY_NAMESPACE) -> Manifest:
    """The namespace denies all ingress: let in the gateway's pods and, when public, the ingress controller."""
    peers: list[Manifest] = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": gateway_namespace}},
                              "podSelector": {"matchLabels": dict(GATEWAY_LABELS)}}]
    if spec.public:
        peers.append({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ingress_namespace}}})
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": _owned(spec, namespace, created),
            "spec": {"podSelector": {"matchLabels": selector(spec)}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": peers, "ports": [{"protocol": "TCP", "port": spec.port}]}]}}


def ingress(spec: AppSpec, namespace: str, created: Mapping[str, Any], *, domain: str,
            ingress_class: str | None = None) -> Manifest:
    """``{name}.{domain}`` to the Service's port; only for public deployments."""
    backend = {"service": {"name": object_name(spec.name), "port": {"name": PORT_NAME}}}
    body: Manifest = {"rules": [{"host": host(spec, domain), "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": backend}]}}]}
    if ingress_class:
        body["ingressClassName"] = ingress_class
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": _owned(spec, namespace, created),
            "spec": body}


def template_patch(spec: AppSpec, namespace: str, *, placement: Placement = NO_PLACEMENT) -> Manifest:
    """The merge patch that changes image, command, env, revision and resources: the controller rolls the Pods."""
    desired = deployment(spec, namespace, placement=placement)
    return {"spec": {"template": desired["spec"]["template"]}}
