"""Reading a deployment's state from its Deployment and Pods as the cluster reports them (pure).

``Ready`` needs every replica the Deployment asks for, of the current revision, ready (its
readiness probe on the health path answered) and the Deployment's controller to have seen the
current spec. ``Error``
comes from the Pods (a container waiting in ``CrashLoopBackOff``, ``ImagePullBackOff`` or
another reason that does not heal by itself) or from the Deployment (``Progressing`` False with
``ProgressDeadlineExceeded``); ``last_error`` names the reason, the replica and, for a crash, the
last lines of its output (the kubelet keeps them as the termination message, since the
container asks for ``FallbackToLogsOnError``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from k8s.deployments import CONTAINER, REVISION_ANNOTATION
from mcp_server.runtime.apps import AppIngress, AppPhase, AppStatus, ReplicaStatus, parse_time
from mcp_server.runtime.base import Endpoint

Obj = Mapping[str, Any]

FAILING = frozenset({"CrashLoopBackOff", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName",
                     "CreateContainerConfigError", "CreateContainerError"})
"""Waiting reasons that mean the replica keeps failing (the kubelet retries, with back-off)."""
OUTPUT_LIMIT = 2048


def revision(obj: Obj) -> int:
    """The revision a Deployment's template (or a Pod made from it) carries."""
    meta = obj.get("spec", {}).get("template", {}).get("metadata") if obj.get("kind") == "Deployment" \
        else obj.get("metadata")
    try:
        return int(((meta or {}).get("annotations") or {}).get(REVISION_ANNOTATION) or 0)
    except ValueError:
        return 0


def _container(pod: Obj) -> Obj:
    status: Obj
    for status in pod.get("status", {}).get("containerStatuses") or []:
        if status.get("name") == CONTAINER:
            return status
    return {}


def ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in pod.get("status", {}).get("conditions") or [])


def restarts(pod: Obj) -> int:
    return int(_container(pod).get("restartCount") or 0)


def started(pod: Obj) -> datetime | None:
    """When the app's container last started, if it runs."""
    return parse_time(_container(pod).get("state", {}).get("running", {}).get("startedAt"))


def failure(pod: Obj) -> str | None:
    """Why this replica keeps failing, with the last lines of its output when it crashed; ``None`` if it is not."""
    status = _container(pod)
    waiting = status.get("state", {}).get("waiting") or {}
    if waiting.get("reason") not in FAILING:
        return None
    name = pod["metadata"]["name"]
    text = f"{waiting['reason']}: replica {name}"
    last = status.get("lastState", {}).get("terminated") or {}
    if waiting["reason"] == "CrashLoopBackOff" and last:
        text += f" exited with code {last.get('exitCode')} ({restarts(pod)} restarts)"
        output = str(last.get("message") or "").strip()
        if output:
            text += f"; last output:\n{output[-OUTPUT_LIMIT:]}"
    elif waiting.get("message"):
        text += f": {waiting['message']}"
    return text


def stalled(deployment: Obj) -> str | None:
    for condition in deployment.get("status", {}).get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return (f"ProgressDeadlineExceeded: {condition.get('message') or 'the rollout made no progress'} "
                    "(no new replica became ready: check the health path and the app's logs)")
    return None


def replica(pod: Obj, port: int) -> ReplicaStatus:
    address = pod.get("status", {}).get("podIP")
    return ReplicaStatus(replica=pod["metadata"]["name"], ready=ready(pod), restarts=restarts(pod),
                         last_error=failure(pod), revision=revision(pod), started=started(pod),
                         endpoint=Endpoint(host=address, port=port) if address and ready(pod) else None)


def app_status(name: str, desired: int, port: int, deployment: Obj | None, pods: Sequence[Obj],
               ingresses: Sequence[AppIngress]) -> AppStatus:
    if deployment is None:
        return AppStatus(name=name, phase="Pending", replicas=desired, ingresses=tuple(ingresses))
    current = revision(deployment)
    live = sorted((p for p in pods if not p["metadata"].get("deletionTimestamp")),
                  key=lambda p: p["metadata"]["name"])
    ready_now = sum(1 for p in live if revision(p) == current and ready(p))
    error = next((text for p in live if (text := failure(p)) is not None), None) or stalled(deployment)
    seen = deployment.get("status", {}).get("observedGeneration", 0) >= deployment["metadata"].get("generation", 1)
    # The Deployment's count is the truth every gateway process shares; ``desired`` (this process's spec, which
    # another process may have changed since) only tells a Deployment still at 0 while being created apart.
    wanted = int(deployment.get("spec", {}).get("replicas") or 0)
    creating = wanted == 0 and desired > 0
    phase: AppPhase = "Provisioning"
    if error is not None:
        phase = "Error"
    elif seen and not creating and ready_now >= wanted:
        phase = "Ready"
    return AppStatus(name=name, phase=phase, replicas=desired if creating else wanted, ready_replicas=ready_now,
                     revision=current, last_error=error, replica_status=tuple(replica(p, port) for p in live),
                     ingresses=tuple(ingresses))
