"""Pure functions from a sandbox's ``RunSpec`` to the Kubernetes objects that would run it.

A sandbox is a one-Pod ``batch/v1`` Job (a Job's ``activeDeadlineSeconds`` can be raised by
``extend``; a Pod's cannot), a Secret with its env and password (the run's Secret), a ClusterIP
Service in front of its port, and a NetworkPolicy that lets only the gateway's pods reach it.
Its egress follows the namespace's ``network`` policy, as for runs.

The Pod's home is an ``emptyDir`` at ``HOME_DIR``, its working directory: exec starts there and
file paths are confined to it (``k8s.podscripts``). ``k8s.workloads`` creates these objects.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from k8s import manifests
from mcp_server.runtime.base import RunSpec

Manifest = dict[str, Any]

KEEP_ALIVE = ["sh", "-c", "trap 'exit 0' TERM; sleep infinity & wait"]
"""What the sandbox's container runs: nothing, until it is told to stop; work arrives by pods/exec."""
GATEWAY_NAMESPACE = "kubegate"
GATEWAY_LABELS = {"app.kubernetes.io/name": "kubegate"}
HOME_DIR = "/home/sandbox"
"""The sandbox's writable home (an ``emptyDir``: the image's own files may not be writable by its uid)."""


def objects(spec: RunSpec, namespace: str, *, port: int, ttl_seconds: int,
            gateway_namespace: str = GATEWAY_NAMESPACE,
            placement: manifests.Placement | None = None) -> list[Manifest]:
    """Job (suspended until its Secret exists), Service and NetworkPolicy of one sandbox, in order.

    The Secret is owned by the Job, so it is made from the created Job: ``secret``.
    """
    kept = replace(spec, command=KEEP_ALIVE)
    job = manifests.job(kept, namespace, ttl_seconds=ttl_seconds, placement=placement or manifests.Placement())
    pod = job["spec"]["template"]["spec"]
    pod["volumes"] = [{"name": "home", "emptyDir": {}}]
    container = pod["containers"][0]
    container["ports"] = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    container["workingDir"] = HOME_DIR
    container["volumeMounts"] = [{"name": "home", "mountPath": HOME_DIR}]
    return [job, service(kept, namespace, port), ingress_policy(kept, namespace, port, gateway_namespace)]


def secret(spec: RunSpec, namespace: str, created_job: Manifest) -> Manifest:
    """The sandbox's env and password, owned by its Job (as for runs)."""
    return manifests.secret(replace(spec, command=KEEP_ALIVE), namespace, created_job)


def _selector(spec: RunSpec) -> dict[str, str]:
    return {manifests.RUN_LABEL: manifests.label_value(spec.run_id)}


def service(spec: RunSpec, namespace: str, port: int) -> Manifest:
    """The address the gateway's proxy dials: ``{name}.{namespace}.svc:{port}``."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(spec, namespace),
        "spec": {
            "type": "ClusterIP",
            "selector": _selector(spec),
            "ports": [{"name": "http", "port": port, "targetPort": port, "protocol": "TCP"}],
        },
    }


def ingress_policy(spec: RunSpec, namespace: str, port: int, gateway_namespace: str) -> Manifest:
    """Only the gateway's pods may open connections to the sandbox, and only to its port."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(spec, namespace),
        "spec": {
            "podSelector": {"matchLabels": _selector(spec)},
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [{
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": gateway_namespace}},
                    "podSelector": {"matchLabels": dict(GATEWAY_LABELS)},
                }],
                "ports": [{"protocol": "TCP", "port": port}],
            }],
        },
    }


def deadline_patch(job_started: datetime, deadline: datetime) -> Manifest:
    """The merge patch that moves a sandbox Job's end to ``deadline`` (its deadline counts from its start)."""
    return {"spec": {"activeDeadlineSeconds": max(1, int(round((deadline - job_started).total_seconds())))}}


def _meta(spec: RunSpec, namespace: str) -> Manifest:
    return {"name": manifests.job_name(spec.run_id), "namespace": namespace, "labels": manifests.run_labels(spec),
            "annotations": {manifests.RUN_ID_ANNOTATION: spec.run_id, manifests.OWNER_ANNOTATION: spec.owner}}
