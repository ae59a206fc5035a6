"""Pure functions from a ``RunSpec`` to the Kubernetes objects that execute it.

One run is a ``batch/v1`` Job (one Pod, never retried) plus a Secret holding its environment;
the Secret is owned by the Job so that deleting the Job with background propagation removes
everything. Every user gets one namespace, ``prefix + slug(owner) + hash``, created on first
use together with a NetworkPolicy that cuts egress for runs started without ``network``.

Names and label values are derived deterministically from ids that may contain characters
Kubernetes rejects (``task_…``, ``alice@example.com``): lossy slugs get a hash suffix so two
different ids never collide. The exact ids ride along as annotations.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from typing import Any

from mcp_server.runtime.base import DEFAULT_SIZE, SIZES, RunSpec, SizeName

Manifest = dict[str, Any]

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "kubegate"
OWNER_LABEL = "kubegate.dev/owner"
RUN_LABEL = "kubegate.dev/run"
NETWORK_LABEL = "kubegate.dev/network"
RUN_ID_ANNOTATION = "kubegate.dev/run-id"
OWNER_ANNOTATION = "kubegate.dev/owner"
SELECTOR = f"{MANAGED_BY}={MANAGER}"
CONTAINER = "run"
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


def namespace(name: str, owner: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {MANAGED_BY: MANAGER, OWNER_LABEL: label_value(owner),
                       "pod-security.kubernetes.io/enforce": "restricted"},
            "annotations": {OWNER_ANNOTATION: owner},
        },
    }


def deny_egress_policy(namespace_: str) -> Manifest:
    """Runs labelled ``network=none`` get no egress at all (enforced by the cluster's CNI)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "kubegate-no-network", "namespace": namespace_, "labels": {MANAGED_BY: MANAGER}},
        "spec": {
            "podSelector": {"matchLabels": {NETWORK_LABEL: "none"}},
            "policyTypes": ["Egress"],
            "egress": [],
        },
    }


def secret(spec: RunSpec, namespace_: str) -> Manifest:
    """The run's environment; referenced by key from the Job so values never appear in its spec."""
    data = {key: base64.b64encode(value.encode()).decode() for key, value in spec.env.items()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(job_name(spec.run_id), namespace_, spec),
        "type": "Opaque",
        "data": data,
    }


def owner_reference(job: Mapping[str, Any]) -> Manifest:
    meta = job["metadata"]
    return {"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": True}


def _resources(size: SizeName) -> Manifest:
    chosen = SIZES.get(size, SIZES[DEFAULT_SIZE])
    # max_pids has no per-pod knob in Kubernetes (it is a kubelet setting), so it is not mapped.
    quantity = {"cpu": f"{chosen.cpu_millis}m", "memory": f"{chosen.memory_mib}Mi"}
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


def job(spec: RunSpec, namespace_: str, *, ttl_seconds: int) -> Manifest:
    """The Job for one run: one Pod, no retries, killed at the timeout, collected ``ttl_seconds`` after."""
    name = job_name(spec.run_id)
    meta = _meta(name, namespace_, spec)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": max(1, int(round(spec.timeout_seconds))),
            "ttlSecondsAfterFinished": ttl_seconds,
            "template": {
                "metadata": {"labels": dict(meta["labels"]), "annotations": dict(meta["annotations"])},
                "spec": {
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
                },
            },
        },
    }
