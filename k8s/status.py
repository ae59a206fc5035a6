"""Reading a run's fate from the Job and Pod objects the cluster reports (plain JSON dicts).

The Job decides *whether* and *how* a run ended: only its ``Complete`` / ``Failed`` condition
is final (a Pod killed at the deadline looks like any failed Pod; only the Job says
``DeadlineExceeded``). The Pod supplies the details: exit code, termination message (the
step's output) and the reason a Pod failed (OOM-killed; evicted or preempted, from its
``DisruptionTarget`` condition, which the Job's ``podFailurePolicy`` turns into a failure). Only
the container named ``run`` counts: a mesh may inject others. A container stuck waiting for a
reason that never heals (an image that cannot be pulled) is treated as final too, rather than
letting the run hang until its deadline; ``start_failure`` says why a run never got a Pod.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from k8s.manifests import CONTAINER
from mcp_server.runtime.base import ExitReason, cap_output

Obj = Mapping[str, Any]
ContainerPhase = Literal["waiting", "running", "terminated"]

FATAL_WAITING = frozenset({
    "ErrImageNeverPull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError",
    "CreateContainerError",
})
"""Waiting reasons the kubelet keeps retrying but that a one-off run never recovers from."""


@dataclass(frozen=True, slots=True)
class JobEnd:
    succeeded: bool
    reason: str | None
    message: str | None


@dataclass(frozen=True, slots=True)
class Outcome:
    exit_code: int | None
    reason: ExitReason
    output: str | None
    message: str | None


DISRUPTIONS = {
    "EvictionByEvictionAPI": "evicted",
    "PreemptionByScheduler": "preempted by a higher-priority Pod",
    "DeletionByTaintManager": "evicted by a taint on its node",
    "TerminationByKubelet": "evicted by the kubelet (node pressure or shutdown)",
    "DeletionByPodGC": "its node was lost",
}
"""``DisruptionTarget`` reasons: the Pod was stopped by the cluster, not by the run's own failure."""


def _container_status(pod: Obj) -> Obj | None:
    """The run's own container, by name: a mesh may have injected others before it."""
    status: Obj
    for status in pod.get("status", {}).get("containerStatuses") or []:
        if status.get("name") == CONTAINER:
            return status
    return None


def _condition(pod: Obj, kind: str) -> Obj | None:
    condition: Obj
    for condition in pod.get("status", {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") in ("True", "False"):
            return condition
    return None


def disruption(pod: Obj | None) -> str | None:
    """``"evicted: message"`` when the cluster stopped the Pod (eviction, preemption, node loss)."""
    condition = _condition(pod, "DisruptionTarget") if pod is not None else None
    if condition is None or condition.get("status") != "True":
        return None
    reason = str(condition.get("reason") or "")
    return _join(DISRUPTIONS.get(reason, f"disrupted ({reason})" if reason else "disrupted"), condition.get("message"))


def start_failure(pod: Obj | None, events: Sequence[Obj]) -> str:
    """Why a run never got a running Pod: unschedulable, quota or admission, from the Pod and the Job's Events."""
    condition = _condition(pod, "PodScheduled") if pod is not None else None
    if condition is not None and condition.get("status") == "False":
        return _join("unschedulable", condition.get("message")) or "unschedulable"
    failed = [e for e in events if e.get("reason") == "FailedCreate"]
    if failed:
        message = str(failed[-1].get("message") or "")
        kind = "quota" if "exceeded quota" in message or "failed quota" in message else "admission"
        return f"{kind}: {message}"
    if pod is not None and (waiting := _waiting(pod)):
        return _join(waiting.get("reason"), waiting.get("message")) or "waiting"
    return "no Pod was created"


def container_phase(pod: Obj) -> ContainerPhase | None:
    """Which state the run's container is in, ``None`` before the kubelet reported any."""
    status = _container_status(pod)
    if status is None:
        return None
    for phase in ("terminated", "running", "waiting"):
        if status.get("state", {}).get(phase) is not None:
            return phase
    return None


def has_started(pod: Obj) -> bool:
    return container_phase(pod) in ("running", "terminated")


def terminated(pod: Obj) -> Obj | None:
    status = _container_status(pod)
    return None if status is None else status.get("state", {}).get("terminated")


def _waiting(pod: Obj) -> Obj | None:
    status = _container_status(pod)
    waiting: Obj | None = None if status is None else status.get("state", {}).get("waiting")
    return waiting


def fatal_waiting(pod: Obj) -> str | None:
    """``"Reason: message"`` when the container waits for something that will not come."""
    waiting = _waiting(pod)
    if not waiting or waiting.get("reason") not in FATAL_WAITING:
        return None
    return _join(waiting.get("reason"), waiting.get("message"))


def job_end(job: Obj) -> JobEnd | None:
    """The Job's final condition, ``None`` while it is still active."""
    for condition in job.get("status", {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") in ("Complete", "Failed"):
            return JobEnd(condition["type"] == "Complete", condition.get("reason"), condition.get("message"))
    return None


def outcome(end: JobEnd, pod: Obj | None) -> Outcome:
    """The result of a finished run; ``output`` is the termination message, when the run wrote one."""
    term = terminated(pod) if pod is not None else None
    exit_code = term.get("exitCode") if term else None
    # Only a container that exited by itself wrote the message; for ContainerStatusUnknown and the
    # like the kubelet fills it with its own words, which are no step's output.
    output = _output(term.get("message")) if term and term.get("reason") in ("Completed", "Error") else None
    if end.succeeded:
        return Outcome(0 if exit_code is None else exit_code, "completed", output, None)
    if end.reason == "DeadlineExceeded":
        return Outcome(exit_code, "timeout", output, end.message or "deadline exceeded")
    if (disrupted := disruption(pod)) is not None or end.reason == "PodFailurePolicy":
        return Outcome(exit_code, "error", None, disrupted or _join(end.reason, end.message))
    return Outcome(exit_code, "error", output, _failure_message(end, pod, term))


def _failure_message(end: JobEnd, pod: Obj | None, term: Obj | None) -> str | None:
    status = pod.get("status", {}) if pod is not None else {}
    if status.get("reason"):
        return _join(status["reason"], status.get("message"))
    if term and term.get("reason") not in (None, "Error", "Completed"):
        return str(term["reason"])
    if term and term.get("exitCode") not in (None, 0):
        return f"exit code {term['exitCode']}"
    return _join(end.reason, end.message)


def _output(message: str | None) -> str | None:
    text = (message or "").strip()
    return cap_output(text) if text else None


def _join(reason: str | None, message: str | None) -> str | None:
    message = message.strip() if message else None
    if reason and message:
        return f"{reason}: {message}"
    return reason or message
