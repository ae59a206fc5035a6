"""A simulated Job controller and TTL collector, reacting to store events like the real ones.

It defaults new Jobs (selector, controller labels), keeps a suspended Job ``Suspended`` until
``spec.suspend`` turns false, then creates the one Pod a Job with ``parallelism: 1`` needs; a
Pod the API refuses (quota, admission) becomes a ``FailedCreate`` Event on the Job and is
tried again. It mirrors the Pod's end into Job conditions (a ``podFailurePolicy`` rule
matching a Pod condition fails the Job with reason ``PodFailurePolicy``), enforces
``activeDeadlineSeconds`` (``FailureTarget`` first, Pods terminated, then ``Failed`` with
reason ``DeadlineExceeded``, in the order Kubernetes 1.31+ uses) and deletes finished Jobs
with background propagation once ``ttlSecondsAfterFinished`` has passed.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from k8s.sim.kubelet import Kubelet
from k8s.sim.store import ApiError, Obj, Store, now

CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
RETRY_SECONDS = 0.5
"""How soon a refused Pod is tried again (a real controller backs off exponentially from 10 s)."""
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


def _policy_match(job: Obj, pod: Obj | None) -> str | None:
    """The message of the first ``podFailurePolicy`` FailJob rule a failed Pod's conditions match."""
    if pod is None:
        return None
    held = {(c["type"], c["status"]) for c in pod.get("status", {}).get("conditions") or []}
    for index, rule in enumerate(job["spec"].get("podFailurePolicy", {}).get("rules") or []):
        for wanted in rule.get("onPodConditions") or []:
            if rule["action"] == "FailJob" and (wanted["type"], wanted.get("status", "True")) in held:
                meta = pod["metadata"]
                return (f"Pod {meta['namespace']}/{meta['name']} has condition {wanted['type']} matching "
                        f"FailJob rule at index {index}")
    return None


def _finished(job: Obj) -> bool:
    return any(c["type"] in ("Complete", "Failed") and c["status"] == "True"
               for c in job.get("status", {}).get("conditions") or [])


class JobController:
    def __init__(self, store: Store, kubelet: Kubelet) -> None:
        self._store = store
        self._kubelet = kubelet
        self._timers: dict[str, list[asyncio.TimerHandle]] = {}
        self._running: set[str] = set()
        self._deadlines: dict[str, tuple[int, asyncio.TimerHandle]] = {}
        """Per running Job uid: the activeDeadlineSeconds its timer was set for, and that timer."""
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
        if resource == "jobs" and kind == "MODIFIED" and meta["uid"] in self._running:
            self._soon(self._rearm, obj)
        if resource == "jobs" and kind in ("ADDED", "MODIFIED") and meta["uid"] not in self._running:
            if obj["spec"].get("suspend"):
                if kind == "ADDED":
                    self._soon(self._suspended, meta["namespace"], meta["name"])
            else:
                self._running.add(meta["uid"])
                self._soon(self._start, obj)
        elif resource == "jobs" and kind == "DELETED":
            self._running.discard(meta["uid"])
            if (armed := self._deadlines.pop(meta["uid"], None)) is not None:
                armed[1].cancel()
            for timer in self._timers.pop(meta["uid"], []):
                timer.cancel()
        elif resource == "pods" and kind == "MODIFIED" and (obj.get("status") or {}).get("phase") in (
                "Succeeded", "Failed"):
            for ref in meta.get("ownerReferences") or []:
                if ref["kind"] == "Job":
                    self._soon(self._finish, meta["namespace"], ref["name"], obj["status"]["phase"] == "Succeeded", obj)

    def _suspended(self, namespace: str, name: str) -> None:
        def mark(job: Obj) -> None:
            job["status"] = {"conditions": [_condition("Suspended", "JobSuspended", "Job suspended")]}
        self._store.update("jobs", namespace, name, mark)

    def _later(self, job: Obj, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        handle = asyncio.get_running_loop().call_later(delay, self._guarded, fn, *args)
        self._timers.setdefault(job["metadata"]["uid"], []).append(handle)

    def _start(self, job: Obj) -> None:
        meta, template = job["metadata"], job["spec"]["template"]

        def started(obj: Obj) -> None:
            conditions = [c for c in obj.get("status", {}).get("conditions") or [] if c["type"] != "Suspended"]
            if len(conditions) != len(obj.get("status", {}).get("conditions") or []):
                conditions.append({**_condition("Suspended", "JobResumed", "Job resumed"), "status": "False"})
            obj["status"] = {"startTime": now(), "active": 1, "ready": 0, "terminating": 0,
                             **({"conditions": conditions} if conditions else {})}
        self._store.update("jobs", meta["namespace"], meta["name"], started)
        self._create_pod(job, meta, template)
        self._rearm(self._store.get("jobs", meta["namespace"], meta["name"]))

    def _rearm(self, job: Obj) -> None:
        """Set the deadline timer from the Job's start; a changed ``activeDeadlineSeconds`` moves it, as upstream."""
        meta, seconds = job["metadata"], job["spec"].get("activeDeadlineSeconds")
        armed = self._deadlines.get(meta["uid"])
        if (armed and armed[0] == seconds) or _finished(job) or not job.get("status", {}).get("startTime"):
            return
        if armed is not None:
            armed[1].cancel()
            del self._deadlines[meta["uid"]]
        if seconds is None:
            return
        started = datetime.strptime(job["status"]["startTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        left = max(0.0, seconds - (datetime.now(UTC) - started).total_seconds())
        handle = asyncio.get_running_loop().call_later(left, self._guarded, self._spawn_deadline, meta["namespace"],
                                                       meta["name"])
        self._deadlines[meta["uid"]] = (seconds, handle)

    def _create_pod(self, job: Obj, meta: Obj, template: Obj) -> None:
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "generateName": f"{meta['name']}-", "labels": dict(template["metadata"].get("labels") or {}),
                "annotations": dict(template["metadata"].get("annotations") or {}),
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"],
                                     "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}],
            },
            "spec": copy.deepcopy(template["spec"]),
        }
        try:
            self._store.create("pods", meta["namespace"], pod)
        except ApiError as exc:
            if exc.code != 403:
                raise
            self._failed_create(meta, f"Error creating: {exc.message}")
            self._later(job, RETRY_SECONDS, self._retry, job, meta, template)

    def _retry(self, job: Obj, meta: Obj, template: Obj) -> None:
        current = self._store.get("jobs", meta["namespace"], meta["name"])
        if not _finished(current) and not self._store.owned_by("pods", meta["uid"]):
            self._create_pod(job, meta, template)

    def _failed_create(self, job: Obj, message: str) -> None:
        """The Event a real Job controller records when the API refuses its Pod; repeats count up."""
        name = f"{job['name']}.failedcreate"

        def again(event: Obj) -> None:
            event.update(count=event.get("count", 1) + 1, message=message, lastTimestamp=now())
        try:
            self._store.update("events", job["namespace"], name, again)
        except ApiError:
            self._store.create("events", job["namespace"], {
                "apiVersion": "v1", "kind": "Event", "metadata": {"name": name, "namespace": job["namespace"]},
                "involvedObject": {"apiVersion": "batch/v1", "kind": "Job", "name": job["name"],
                                   "namespace": job["namespace"], "uid": job["uid"]},
                "reason": "FailedCreate", "message": message, "type": "Warning",
                "source": {"component": "job-controller"}, "firstTimestamp": now(), "lastTimestamp": now(),
                "count": 1})

    def _finish(self, namespace: str, name: str, succeeded: bool, pod: Obj | None = None) -> None:
        def finish(job: Obj) -> None:
            status = job.setdefault("status", {})
            conditions = status.setdefault("conditions", [])
            target = next((c for c in conditions if c["type"] == "FailureTarget"), None)
            if target is None and not succeeded and (matched := _policy_match(job, pod)) is not None:
                target = _condition("FailureTarget", "PodFailurePolicy", matched)
                conditions.append(target)
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
        for _, handle in self._deadlines.values():
            handle.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
