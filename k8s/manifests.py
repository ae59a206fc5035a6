"""Pure functions from a ``RunSpec`` to the Kubernetes objects that execute it.

One run is a ``batch/v1`` Job (one Pod, never retried) plus a Secret holding its environment.
The Job is created suspended, the Secret is created owned by it, then the Job is resumed: so a
Secret never exists without its owner and deleting the Job (background propagation) removes
everything. Every user gets one namespace, ``prefix + slug(owner) + hash``, whose policy
(``k8s.policy``) is in place before any Job is created there.

Names and label values are derived deterministically from ids that may contain characters
Kubernetes rejects (``task_…``, ``alice@example.com``): lossy slugs get a hash suffix so two
different ids never collide. The exact ids ride along as annotations.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from k8s.policy import (
    MANAGED_BY,
    MANAGER,
    NETWORK_LABEL,
    OWNER_ANNOTATION,
    OWNER_LABEL,
    SELECTOR,
    size_quantities,
)
from mcp_server.runtime.base import DEFAULT_SIZE, SIZES, RunSpec, SizeName

__all__ = ["MANAGED_BY", "MANAGER", "NETWORK_LABEL", "OWNER_ANNOTATION", "OWNER_LABEL", "SELECTOR"]

Manifest = dict[str, Any]

RUN_LABEL = "kubegate.dev/run"
RUN_ID_ANNOTATION = "kubegate.dev/run-id"
CONTAINER = "run"
"""The run's container; status and logs are read from it by name (a mesh may inject others)."""
NO_SIDECARS = {"sidecar.istio.io/inject": "false", "linkerd.io/inject": "disabled",
               "kuma.io/sidecar-injection": "disabled"}
"""Opt-outs of the common mesh injectors: a proxy that never exits would keep a Job running forever."""
OUTPUT_PATH = "/dev/termination-log"
NONROOT_UID = 65532
"""The conventional "nonroot" uid: lets images built to run as root start under runAsNonRoot."""

_MAX_NAME = 63
_NOT_DNS = re.compile(r"[^a-z0-9-]+")
_NOT_LABEL = re.compile(r"[^A-Za-z0-9_.-]+")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def dns_name(prefix: str, text: str) -> str:
    """A DNS-1123 label ``prefix + slug(text) + '-' + hash(text)``, at most 63 characters."""
    room = _MAX_NAME - len(prefix) - 9
    slug = _NOT_DNS.sub("-", text.lower()).strip("-")[:room].strip("-")
    return f"{prefix}{slug}-{_digest(text)}" if slug else f"{prefix}{_digest(text)}"


def label_value(text: str) -> str:
    """``text`` itself when it is a valid label value, else a sanitized slug with a hash suffix."""
    if _LABEL_VALUE.match(text):
        return text
    slug = _NOT_LABEL.sub("-", text).strip("-_.")[: _MAX_NAME - 9].strip("-_.")
    return f"{slug}-{_digest(text)}" if slug else _digest(text)


def namespace_name(prefix: str, owner: str) -> str:
    """The namespace every run of ``owner`` lives in."""
    return dns_name(prefix, owner)


def job_name(run_id: str) -> str:
    """The Job (and Secret) name of a run; run ids are unique, so no prefix is needed to separate them."""
    return run_id if _DNS_LABEL.match(run_id) else dns_name("", run_id)


def run_labels(spec: RunSpec) -> dict[str, str]:
    labels = {label_key(key): label_value(value) for key, value in spec.labels.items()}
    labels.update({
        MANAGED_BY: MANAGER,
        OWNER_LABEL: label_value(spec.owner),
        RUN_LABEL: label_value(spec.run_id),
        NETWORK_LABEL: "allowed" if spec.network else "none",
    })
    return labels


def label_key(key: str) -> str:
    """Bare keys from ``spec.labels`` (``task``, ``workflow``, ``step``) go under our own prefix."""
    name = key.rsplit("/", 1)[-1]
    return f"kubegate.dev/{label_value(name)[:_MAX_NAME]}"


def _meta(name: str, namespace: str, spec: RunSpec) -> Manifest:
    return {
        "name": name,
        "namespace": namespace,
        "labels": run_labels(spec),
        "annotations": {RUN_ID_ANNOTATION: spec.run_id, OWNER_ANNOTATION: spec.owner},
    }


def secret(spec: RunSpec, namespace_: str, job: Mapping[str, Any]) -> Manifest:
    """The run's environment, owned by its Job; referenced by key so values never appear in the Job."""
    data = {key: base64.b64encode(value.encode()).decode() for key, value in spec.env.items()}
    meta = _meta(job_name(spec.run_id), namespace_, spec)
    meta["ownerReferences"] = [owner_reference(job)]
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque", "data": data}


def owner_reference(job: Mapping[str, Any]) -> Manifest:
    """No ``blockOwnerDeletion``: it needs ``jobs/finalizers`` where OwnerReferencesPermissionEnforcement is on."""
    meta = job["metadata"]
    return {"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"], "uid": meta["uid"], "controller": True}


def _resources(size: SizeName) -> Manifest:
    # max_pids has no per-pod knob in Kubernetes (it is a kubelet setting), so it is not mapped.
    quantity = size_quantities(size if size in SIZES else DEFAULT_SIZE)
    return {"requests": dict(quantity), "limits": dict(quantity)}


def _container(spec: RunSpec, secret_name: str) -> Manifest:
    env: list[Manifest] = [{"name": "KUBEGATE_OUTPUT", "value": OUTPUT_PATH}]
    env += [{"name": key, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}} for key in spec.env]
    return {
        "name": CONTAINER,
        "image": spec.image,
        "command": list(spec.command),
        "env": env,
        "resources": _resources(spec.size),
        "terminationMessagePath": OUTPUT_PATH,
        "terminationMessagePolicy": "File",
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


@dataclass(frozen=True, slots=True)
class Placement:
    """Where run Pods may go on a shared kernel: a sandboxed runtime class, dedicated nodes, user namespaces."""

    runtime_class: str | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Manifest, ...] = ()
    user_namespaces: bool = False

    def apply(self, pod: Manifest) -> None:
        if self.runtime_class:
            pod["runtimeClassName"] = self.runtime_class
        if self.node_selector:
            pod["nodeSelector"] = dict(self.node_selector)
        if self.tolerations:
            pod["tolerations"] = [dict(t) for t in self.tolerations]
        if self.user_namespaces:
            pod["hostUsers"] = False


DISRUPTIONS: list[Manifest] = [
    {"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]
"""An evicted or preempted Pod fails the Job with reason ``PodFailurePolicy``, not as an anonymous exit 137."""


def job(spec: RunSpec, namespace_: str, *, ttl_seconds: int, placement: Placement = Placement(),
        suspend: bool = True) -> Manifest:
    """The Job for one run: one Pod, no retries, killed at the timeout; suspended until its Secret exists."""
    name = job_name(spec.run_id)
    meta = _meta(name, namespace_, spec)
    pod: Manifest = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": NONROOT_UID,
            "runAsGroup": NONROOT_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(spec, name)],
    }
    placement.apply(pod)
    labels = {**meta["labels"], **NO_SIDECARS}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "suspend": suspend,
            "backoffLimit": 0,
            "podFailurePolicy": {"rules": DISRUPTIONS},
            "activeDeadlineSeconds": max(1, int(round(spec.timeout_seconds))),
            "ttlSecondsAfterFinished": ttl_seconds,
            "template": {
                "metadata": {"labels": labels, "annotations": {**meta["annotations"], **NO_SIDECARS}},
                "spec": pod,
            },
        },
    }
