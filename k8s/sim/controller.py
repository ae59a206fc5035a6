"""A simulated Job controller and TTL collector, reacting to store events like the real ones.

It defaults new Jobs (selector, controller labels), creates the one Pod a Job with
``parallelism: 1`` needs, mirrors the Pod's end into Job conditions, enforces
``activeDeadlineSeconds`` (``FailureTarget`` first, Pods terminated, then ``Failed`` with
reason ``DeadlineExceeded``, in the order Kubernetes 1.31+ uses) and deletes finished Jobs
with background propagation once ``ttlSecondsAfterFinished`` has passed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from k8s.sim.kubelet import Kubelet
from k8s.sim.store import ApiError, Obj, Store, now

CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
GRACE_LIMIT = 5.0
"""Cap on the termination grace period, so a deadline test does not wait 30 s for a stubborn process."""


def default_job(job: Obj) -> None:
    """What the API server adds to a new Job: the selector and the controller labels on its template."""
    uid, name = job["metadata"]["uid"], job["metadata"]["name"]
    spec = job["spec"]
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", 1)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("selector", {"matchLabels": {CONTROLLER_UID: uid}})
    labels = spec["template"].setdefault("metadata", {}).setdefault("labels", {})
    labels.update({CONTROLLER_UID: uid, JOB_NAME: name, "controller-uid": uid, "job-name": name})
    job.setdefault("status", {})


COMPLETED = ("CompletionsReached", "Reached expected number of succeeded pods")
BACKOFF = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
DEADLINE = ("DeadlineExceeded", "Job was active longer than specified deadline")


def _condition(kind: str, reason: str, message: str) -> Obj:
    return {"type": kind, "status": "True", "reason": reason, "message": message,
            "lastProbeTime": now(), "lastTransitionTime": now()}


def _finished(job: Obj) -> bool:
    return any(c["type"] in ("Complete", "Failed") and c["status"] == "True"
               for c in job.get("status", {}).get("conditions") or [])


class JobController:
    def __init__(self, store: Store, kubelet: Kubelet) -> None:
        self._store = store
        self._kubelet = kubelet
        self._timers: dict[str, list[asyncio.TimerHandle]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        store.listeners.append(self._on_event)

    def _soon(self, fn: Callable[..., Any], *args: Any) -> None:
        # Reacting after the write that triggered us keeps watch events in causal order.
        asyncio.get_running_loop().call_soon(self._guarded, fn, *args)

    def _guarded(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except ApiError:
            pass  # the object went away meanwhile (deleted, collected): nothing left to control

    def _on_event(self, resource: str, kind: str, obj: Obj) -> None:
        meta = obj["metadata"]
        if resource == "jobs" and kind == "ADDED":
            self._soon(self._start, obj)
        elif resource == "jobs" and kind == "DELETED":
            for timer in self._timers.pop(meta["uid"], []):
                timer.cancel()
        elif resource == "pods" and kind == "MODIFIED" and obj["status"].get("phase") in ("Succeeded", "Failed"):
            for ref in meta.get("ownerReferences") or []:
                if ref["kind"] == "Job":
                    self._soon(self._finish, meta["namespace"], ref["name"], obj["status"]["phase"] == "Succeeded")

    def _later(self, job: Obj, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        handle = asyncio.get_running_loop().call_later(delay, self._guarded, fn, *args)
        self._timers.setdefault(job["metadata"]["uid"], []).append(handle)

    def _start(self, job: Obj) -> None:
        meta, template = job["metadata"], job["spec"]["template"]
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "generateName": f"{meta['name']}-", "labels": dict(template["metadata"].get("labels") or {}),
                "annotations": dict(template["metadata"].get("annotations") or {}),
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"],
                                     "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}],
            },
            "spec": template["spec"],
        }
        self._store.create("pods", meta["namespace"], pod)

        def started(obj: Obj) -> None:
            obj["status"] = {"startTime": now(), "active": 1, "ready": 0, "terminating": 0}
        self._store.update("jobs", meta["namespace"], meta["name"], started)
        if (deadline := job["spec"].get("activeDeadlineSeconds")) is not None:
            self._later(job, deadline, self._spawn_deadline, meta["namespace"], meta["name"])

    def _finish(self, namespace: str, name: str, succeeded: bool) -> None:
        def finish(job: Obj) -> None:
            status = job.setdefault("status", {})
            conditions = status.setdefault("conditions", [])
            target = next((c for c in conditions if c["type"] == "FailureTarget"), None)
            if succeeded and target is None:
                conditions.append(_condition("SuccessCriteriaMet", *COMPLETED))
                conditions.append(_condition("Complete", *COMPLETED))
                status.update(succeeded=1, completionTime=now())
            else:
                if target is None:
                    target = _condition("FailureTarget", *BACKOFF)
                    conditions.append(target)
                conditions.append(_condition("Failed", target["reason"], target["message"]))
                status["failed"] = 1
            status.update(active=0, ready=0, terminating=0)

        job = self._store.get("jobs", namespace, name)
        if _finished(job):
            return
        job = self._store.update("jobs", namespace, name, finish)
        if (ttl := job["spec"].get("ttlSecondsAfterFinished")) is not None:
            self._later(job, ttl, self._store.delete, "jobs", namespace, name, "Background")

    def _spawn_deadline(self, namespace: str, name: str) -> None:
        task = asyncio.get_running_loop().create_task(self._deadline(namespace, name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deadline(self, namespace: str, name: str) -> None:
        try:
            job = self._store.get("jobs", namespace, name)
            if _finished(job):
                return
            self._store.update("jobs", namespace, name, lambda obj: obj["status"].setdefault("conditions", []).append(
                _condition("FailureTarget", *DEADLINE)))
            for pod in self._store.owned_by("pods", job["metadata"]["uid"]):
                grace = min(GRACE_LIMIT, pod["spec"].get("terminationGracePeriodSeconds", 30))
                await self._kubelet.terminate(pod["metadata"]["uid"], grace)
                self._store.delete("pods", namespace, pod["metadata"]["name"])
            self._finish(namespace, name, succeeded=False)
        except ApiError:
            pass

    async def close(self) -> None:
        for timers in self._timers.values():
            for timer in timers:
                timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
