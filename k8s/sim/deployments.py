"""Simulated Deployment and ReplicaSet controllers, reacting to store events like the real ones.

A Deployment owns one ReplicaSet per pod template, named by the template's hash (the
``pod-template-hash`` label, added to the ReplicaSet's selector and Pods). Rolling updates
follow ``maxSurge`` / ``maxUnavailable`` as upstream's ``rolling.go`` does: the new ReplicaSet
grows while the total stays within ``replicas + maxSurge``, and old ones shrink (unready Pods
first) only while ``replicas - maxUnavailable`` Pods stay ready, so a new revision that never
becomes ready never takes the old one's Pods away. A ReplicaSet keeps ``spec.replicas`` Pods
(a Pod the API refuses is tried again). Deployment status carries the counts and the
``Available`` and ``Progressing`` conditions; a rollout without progress for
``progressDeadlineSeconds`` turns ``Progressing`` False with ``ProgressDeadlineExceeded``.
``minReadySeconds`` is taken as 0: available means ready.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import math
from typing import Any

from k8s.sim.store import ApiError, Obj, Store, now

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
RETRY_SECONDS = 0.5


def default_deployment(obj: Obj) -> None:
    spec = obj["spec"]
    spec.setdefault("replicas", 1)
    spec.setdefault("progressDeadlineSeconds", 600)
    spec.setdefault("revisionHistoryLimit", 10)
    strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        strategy.setdefault("rollingUpdate", {}).setdefault("maxSurge", "25%")
        strategy["rollingUpdate"].setdefault("maxUnavailable", "25%")
    spec["template"]["spec"].setdefault("restartPolicy", "Always")
    obj["status"] = {}


def template_hash(template: Obj) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def _scaled(value: Any, total: int, up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        exact = int(value[:-1]) * total / 100
        return math.ceil(exact) if up else math.floor(exact)
    return int(value)


def _ready(rs: Obj) -> int:
    return int(rs.get("status", {}).get("readyReplicas") or 0)


def _want(rs: Obj) -> int:
    return int(rs["spec"].get("replicas") or 0)


def _pod_ready(pod: Obj) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions") or [])


def _condition(kind: str, status: str, reason: str, message: str, since: Obj | None) -> Obj:
    same = since is not None and since.get("status") == status
    return {"type": kind, "status": status, "reason": reason, "message": message, "lastUpdateTime": now(),
            "lastTransitionTime": since["lastTransitionTime"] if same and since else now()}


class DeploymentController:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: set[tuple[str, str, str]] = set()
        self._progress: dict[str, tuple[tuple[int, ...], float]] = {}
        """Per Deployment uid: the counts last seen and when they last changed (progress)."""
        self._timers: dict[str, asyncio.TimerHandle] = {}
        store.defaulters["deployments"] = default_deployment
        store.listeners.append(self._on_event)

    def _on_event(self, resource: str, kind: str, obj: Obj) -> None:
        meta = obj["metadata"]
        if resource == "deployments":
            if kind == "DELETED":
                self._forget(meta["uid"])
            else:
                self._soon("deployments", meta["namespace"], meta["name"])
        elif resource in ("replicasets", "pods"):
            for ref in meta.get("ownerReferences") or []:
                if ref.get("controller") and ref["kind"] in ("ReplicaSet", "Deployment"):
                    self._soon(f"{ref['kind'].lower()}s", meta["namespace"], ref["name"])
            if resource == "replicasets" and kind != "DELETED":
                self._soon("replicasets", meta["namespace"], meta["name"])

    def _forget(self, uid: str) -> None:
        self._progress.pop(uid, None)
        if (timer := self._timers.pop(uid, None)) is not None:
            timer.cancel()

    def _soon(self, resource: str, namespace: str, name: str) -> None:
        # Batched after the write that triggered it: several events make one pass, in causal order.
        key = (resource, namespace, name)
        if key not in self._pending:
            self._pending.add(key)
            asyncio.get_running_loop().call_soon(self._run, key)

    def _run(self, key: tuple[str, str, str]) -> None:
        self._pending.discard(key)
        resource, namespace, name = key
        try:
            if resource == "replicasets":
                self._sync_replicaset(namespace, name)
            else:
                self._sync_deployment(namespace, name)
        except ApiError:
            pass  # it went away meanwhile, or the write lost a race: a later event brings us back

    # ReplicaSets ---------------------------------------------------------------------------------

    def _sync_replicaset(self, namespace: str, name: str) -> None:
        rs = self._store.get("replicasets", namespace, name)
        pods = [p for p in self._store.owned_by("pods", rs["metadata"]["uid"])
                if not p["metadata"].get("deletionTimestamp")]
        missing = _want(rs) - len(pods)
        refused = False
        for _ in range(max(0, missing)):
            refused = not self._create_pod(rs) or refused
        if missing < 0:
            doomed = sorted(pods, key=lambda p: (_pod_ready(p), p["metadata"]["creationTimestamp"]))[:-missing]
            for pod in doomed:
                self._store.delete("pods", namespace, pod["metadata"]["name"])
        if refused:
            asyncio.get_running_loop().call_later(RETRY_SECONDS, self._soon, "replicasets", namespace, name)
        live = [p for p in self._store.owned_by("pods", rs["metadata"]["uid"])
                if not p["metadata"].get("deletionTimestamp")]
        ready = sum(1 for p in live if _pod_ready(p))
        status = {"replicas": len(live), "fullyLabeledReplicas": len(live), "readyReplicas": ready,
                  "availableReplicas": ready, "observedGeneration": rs["metadata"]["generation"]}
        if {k: v for k, v in rs.get("status", {}).items() if k != "conditions"} != status:
            self._store.update("replicasets", namespace, name, lambda obj: obj.update(status=status))

    def _create_pod(self, rs: Obj) -> bool:
        meta, template = rs["metadata"], rs["spec"]["template"]
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"generateName": f"{meta['name']}-", "labels": dict(template["metadata"]["labels"]),
                            "annotations": dict(template["metadata"].get("annotations") or {}),
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": meta["name"],
                                                 "uid": meta["uid"], "controller": True,
                                                 "blockOwnerDeletion": True}]},
               "spec": copy.deepcopy(template["spec"])}
        try:
            self._store.create("pods", meta["namespace"], pod)
        except ApiError as exc:
            if exc.code != 403:
                raise
            return False
        return True

    # Deployments ---------------------------------------------------------------------------------

    def _sync_deployment(self, namespace: str, name: str) -> None:
        dep = self._store.get("deployments", namespace, name)
        new, old = self._replicasets(dep)
        self._roll(dep, new, old)
        new, old = self._replicasets(dep)
        self._status(dep, new, old)

    def _replicasets(self, dep: Obj) -> tuple[Obj, list[Obj]]:
        """The ReplicaSet of the current template (made if missing) and the others, oldest first."""
        template = dep["spec"]["template"]
        digest = template_hash(template)
        owned = sorted(self._store.owned_by("replicasets", dep["metadata"]["uid"]),
                       key=lambda rs: int(rs["metadata"].get("annotations", {}).get(REVISION, "0")))
        new = [rs for rs in owned if rs["metadata"]["labels"].get(HASH_LABEL) == digest]
        old = [rs for rs in owned if rs not in new]
        if new:
            return new[0], old
        return self._new_replicaset(dep, digest, len(owned) and max(
            int(rs["metadata"].get("annotations", {}).get(REVISION, "0")) for rs in owned)), old

    def _new_replicaset(self, dep: Obj, digest: str, last_revision: int) -> Obj:
        meta = dep["metadata"]
        template = copy.deepcopy(dep["spec"]["template"])
        template["metadata"].setdefault("labels", {})[HASH_LABEL] = digest
        selector = copy.deepcopy(dep["spec"]["selector"])
        selector.setdefault("matchLabels", {})[HASH_LABEL] = digest
        self._forget(meta["uid"])  # a new rollout: its progress deadline starts now
        return self._store.create("replicasets", meta["namespace"], {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{meta['name']}-{digest}", "labels": dict(template["metadata"]["labels"]),
                         "annotations": {REVISION: str(last_revision + 1)},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": meta["name"],
                                              "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}]},
            "spec": {"replicas": 0, "selector": selector, "template": template}})

    def _scale(self, rs: Obj, replicas: int) -> None:
        if _want(rs) != replicas:
            meta = rs["metadata"]
            self._store.update("replicasets", meta["namespace"], meta["name"],
                               lambda obj: obj["spec"].update(replicas=replicas))
            rs["spec"]["replicas"] = replicas

    def _roll(self, dep: Obj, new: Obj, old: list[Obj]) -> None:
        desired = int(dep["spec"]["replicas"])
        if not any(_want(rs) for rs in old):
            self._scale(new, desired)
            return
        rolling = (dep["spec"].get("strategy") or {}).get("rollingUpdate") or {}
        surge = _scaled(rolling.get("maxSurge", "25%"), desired, up=True)
        unavailable = _scaled(rolling.get("maxUnavailable", "25%"), desired, up=False)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        room = desired + surge - sum(_want(rs) for rs in [new, *old])
        self._scale(new, min(desired, _want(new) + max(0, room)))
        all_pods = sum(_want(rs) for rs in [new, *old])
        minimum = desired - unavailable
        budget = all_pods - minimum - (_want(new) - _ready(new))
        for rs in old:  # unready old Pods go first: they serve no one
            cut = min(budget, _want(rs) - _ready(rs))
            if cut > 0:
                self._scale(rs, _want(rs) - cut)
                budget -= cut
        budget = min(budget, sum(_ready(rs) for rs in [new, *old]) - minimum)
        for rs in old:
            cut = min(budget, _want(rs))
            if cut > 0:
                self._scale(rs, _want(rs) - cut)
                budget -= cut

    def _status(self, dep: Obj, new: Obj, old: list[Obj]) -> None:
        desired = int(dep["spec"]["replicas"])
        every = [new, *old]
        counts = {"replicas": sum(int(rs.get("status", {}).get("replicas") or 0) for rs in every),
                  "updatedReplicas": int(new.get("status", {}).get("replicas") or 0),
                  "readyReplicas": sum(_ready(rs) for rs in every)}
        counts["availableReplicas"] = counts["readyReplicas"]
        counts["unavailableReplicas"] = max(0, desired - counts["availableReplicas"])
        rolling = (dep["spec"].get("strategy") or {}).get("rollingUpdate") or {}
        unavailable = _scaled(rolling.get("maxUnavailable", "25%"), desired, up=False)
        complete = (counts["updatedReplicas"] == desired and counts["replicas"] == desired
                    and _ready(new) >= desired)
        old_conditions = {c["type"]: c for c in dep.get("status", {}).get("conditions") or []}
        available = counts["availableReplicas"] >= desired - unavailable
        conditions = [_condition("Available", "True" if available else "False",
                                 "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                                 "Deployment has minimum availability." if available
                                 else "Deployment does not have minimum availability.",
                                 old_conditions.get("Available")),
                      self._progressing(dep, new, complete, old_conditions.get("Progressing"), counts)]
        status = {"observedGeneration": dep["metadata"]["generation"], **counts, "conditions": conditions}
        if _comparable(dep.get("status", {})) != _comparable(status):
            meta = dep["metadata"]
            self._store.update("deployments", meta["namespace"], meta["name"], lambda obj: obj.update(status=status))

    def _progressing(self, dep: Obj, new: Obj, complete: bool, before: Obj | None, counts: dict[str, int]) -> Obj:
        uid, rs_name = dep["metadata"]["uid"], new["metadata"]["name"]
        if complete:
            self._forget(uid)
            return _condition("Progressing", "True", "NewReplicaSetAvailable",
                              f'ReplicaSet "{rs_name}" has successfully progressed.', before)
        loop = asyncio.get_running_loop()
        seen = (counts["updatedReplicas"], counts["readyReplicas"], counts["replicas"], _ready(new))
        last = self._progress.get(uid)
        moved = last is None or last[0] != seen
        if last is None or moved:
            last = self._progress[uid] = (seen, loop.time())
        deadline = float(dep["spec"].get("progressDeadlineSeconds", 600))
        left = deadline - (loop.time() - last[1])
        stuck = before is not None and before.get("reason") == "ProgressDeadlineExceeded" and not moved
        if left <= 0 or stuck:
            return _condition("Progressing", "False", "ProgressDeadlineExceeded",
                              f'ReplicaSet "{rs_name}" has timed out progressing.', before)
        if (timer := self._timers.pop(uid, None)) is not None:
            timer.cancel()
        meta = dep["metadata"]
        self._timers[uid] = loop.call_later(left, self._soon, "deployments", meta["namespace"], meta["name"])
        return _condition("Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.', before)

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()


def _comparable(status: Obj) -> Obj:
    """Status without timestamps: only a real change is written (every write wakes every watcher)."""
    kept = {k: v for k, v in status.items() if k != "conditions"}
    kept["conditions"] = [(c["type"], c["status"], c["reason"]) for c in status.get("conditions") or []]
    return kept
