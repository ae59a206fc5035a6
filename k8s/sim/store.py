"""The fake API server's object store: resourceVersions, watch history, validation and garbage collection.

Every write, whether it comes over HTTP or from the simulated controllers, goes through
``_commit``, which validates the object against the Kubernetes 1.33 OpenAPI schema (strict:
unknown fields are errors) plus the name and label rules the schema cannot express. A failing
write is answered 422 and appended to ``invalid_writes`` so a test can assert there were none.

Watches replay the retained history after the requested resourceVersion; ``compact()`` drops
that history, after which an older resourceVersion gets ``410 Gone`` like a real etcd compaction.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from k8s.sim.checks import semantic_errors
from k8s.sim.schemas import schema_error
from k8s.sim.selectors import fields_match, matches

Obj = dict[str, Any]
Listener = Callable[[str, str, Obj], None]


@dataclass(frozen=True, slots=True)
class Resource:
    group_version: str
    kind: str
    namespaced: bool = True


RESOURCES: dict[str, Resource] = {
    "namespaces": Resource("v1", "Namespace", namespaced=False),
    "secrets": Resource("v1", "Secret"),
    "pods": Resource("v1", "Pod"),
    "services": Resource("v1", "Service"),
    "jobs": Resource("batch/v1", "Job"),
    "networkpolicies": Resource("networking.k8s.io/v1", "NetworkPolicy"),
    "resourcequotas": Resource("v1", "ResourceQuota"),
    "limitranges": Resource("v1", "LimitRange"),
    "events": Resource("v1", "Event"),
    "roles": Resource("rbac.authorization.k8s.io/v1", "Role"),
    "rolebindings": Resource("rbac.authorization.k8s.io/v1", "RoleBinding"),
    "leases": Resource("coordination.k8s.io/v1", "Lease"),
    "deployments": Resource("apps/v1", "Deployment"),
    "replicasets": Resource("apps/v1", "ReplicaSet"),
    "ingresses": Resource("networking.k8s.io/v1", "Ingress"),
}
Admission = Callable[[str, Obj], None]
"""Called with (resource, object) before a create is stored; raises ``ApiError`` to refuse it."""
Terminator = Callable[[Obj, float], Awaitable[None]]
"""Stops a Pod's containers within a grace period (the kubelet); the Pod is removed after it returns."""
DEFAULT_PROPAGATION = {"jobs": "Orphan"}
"""batch/v1 Jobs still orphan their Pods unless the client asks otherwise, as on a real cluster."""


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> Obj:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}


@dataclass(frozen=True, slots=True)
class InvalidWrite:
    resource: str
    name: str
    error: str


@dataclass(eq=False)
class Watcher:
    resource: str
    namespace: str | None
    selector: str | None
    queue: asyncio.Queue[Obj | None] = field(default_factory=asyncio.Queue)

    def offer(self, resource: str, event: Obj, before: dict[str, str] | None = None) -> None:
        """``before``: the object's labels before this change, for a MODIFIED event."""
        meta = event["object"]["metadata"]
        if resource != self.resource or (self.namespace and meta.get("namespace") != self.namespace):
            return
        if matches(self.selector, meta.get("labels") or {}):
            self.queue.put_nowait(event)
        elif before is not None and matches(self.selector, before):
            # An object that stops matching leaves the watch as a deletion, as the API server's watch cache says.
            self.queue.put_nowait({"type": "DELETED", "object": event["object"]})


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _without_owner(uid: str) -> Callable[[Obj], None]:
    def orphan(obj: Obj) -> None:
        meta = obj["metadata"]
        meta["ownerReferences"] = [ref for ref in meta.get("ownerReferences") or [] if ref["uid"] != uid]
    return orphan


def _key(resource: str, namespace: str | None, name: str) -> tuple[str, str, str]:
    return (resource, namespace or "", name)


class Store:
    def __init__(self, *, history: int = 10_000, validate: bool = True) -> None:
        self.validate = validate
        """Check every write against the schema; benchmarks turn it off to time kubegate alone."""
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.invalid_writes: list[InvalidWrite] = []
        self.listeners: list[Listener] = []
        self.defaulters: dict[str, Callable[[Obj], None]] = {}
        self.admission: list[Admission] = []
        self.terminator: Terminator | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._rv = 0
        self._floor = 0
        self._history: deque[tuple[int, str, Obj, dict[str, str] | None]] = deque(maxlen=history)
        self._watchers: set[Watcher] = set()

    @property
    def resource_version(self) -> str:
        return str(self._rv)

    def get(self, resource: str, namespace: str | None, name: str) -> Obj:
        obj = self.objects.get(_key(resource, namespace, name))
        if obj is None:
            raise ApiError(404, "NotFound", f'{resource} "{name}" not found')
        return copy.deepcopy(obj)

    def list(self, resource: str, namespace: str | None, selector: str | None, fields: str | None = None) -> list[Obj]:
        return [copy.deepcopy(obj) for (res, ns, _), obj in sorted(self.objects.items())
                if res == resource and (not namespace or ns == namespace)
                and matches(selector, obj["metadata"].get("labels") or {}) and fields_match(fields, obj)]

    def peek(self, resource: str, namespace: str) -> Iterable[Obj]:
        """The stored objects themselves, uncopied: for admission checks that only read them."""
        return [obj for (res, ns, _), obj in self.objects.items() if res == resource and ns == namespace]

    def create(self, resource: str, namespace: str | None, body: Obj) -> Obj:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if RESOURCES[resource].namespaced:
            meta["namespace"] = namespace
            owner = self.objects.get(_key("namespaces", None, namespace or ""))
            if owner is None:
                raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found')
            if owner["status"].get("phase") == "Terminating" and resource != "events":
                raise ApiError(403, "Forbidden", f'{resource} "{meta.get("name")}" is forbidden: unable to create new '
                                                 f"content in namespace {namespace} because it is being terminated")
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if _key(resource, namespace, meta.get("name", "")) in self.objects:
            raise ApiError(409, "AlreadyExists", f'{resource} "{meta["name"]}" already exists')
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
        if resource == "namespaces":
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["status"] = {"phase": "Active"}
        if defaulter := self.defaulters.get(resource):
            defaulter(obj)
        for admit in self.admission:
            admit(resource, obj)
        return self._commit(resource, obj, "ADDED")

    def replace(self, resource: str, namespace: str | None, name: str, body: Obj) -> Obj:
        """PUT: the whole object, refused with 409 when its resourceVersion is not the stored one."""
        current = self.get(resource, namespace, name)
        sent = (body.get("metadata") or {}).get("resourceVersion")
        if sent and sent != current["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {resource} "{name}": the object has '
                                            "been modified; please apply your changes to the latest version")
        obj = copy.deepcopy(body)
        obj.setdefault("metadata", {}).update({key: current["metadata"][key] for key in (
            "name", "namespace", "uid", "creationTimestamp") if key in current["metadata"]})
        if "status" in current:
            obj["status"] = current["status"]
        return self._commit(resource, obj, "MODIFIED")

    def update(self, resource: str, namespace: str | None, name: str, mutate: Callable[[Obj], None]) -> Obj:
        """Read-modify-write, the way controllers and PATCH requests change an object."""
        obj = self.get(resource, namespace, name)
        mutate(obj)
        return self._commit(resource, obj, "MODIFIED")

    def delete(self, resource: str, namespace: str | None, name: str, propagation: str | None = None,
               grace: float | None = None) -> Obj:
        obj = self.objects.get(_key(resource, namespace, name))
        if obj is None:
            raise ApiError(404, "NotFound", f'{resource} "{name}" not found')
        if resource == "namespaces":
            return self._terminate_namespace(name)
        if resource == "pods" and self.terminator is not None:
            return self._terminate_pod(obj, grace)
        return self._remove(resource, namespace, name, propagation)

    def _remove(self, resource: str, namespace: str | None, name: str, propagation: str | None) -> Obj:
        obj = copy.deepcopy(self.objects.pop(_key(resource, namespace, name)))
        obj["metadata"].setdefault("deletionTimestamp", now())
        self._emit(resource, "DELETED", obj)
        self._collect(obj["metadata"]["uid"], propagation or DEFAULT_PROPAGATION.get(resource, "Background"))
        return obj

    def _terminate_pod(self, pod: Obj, grace: float | None) -> Obj:
        """Graceful deletion: deletionTimestamp first, the kubelet stops the containers, then the Pod goes."""
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            return copy.deepcopy(pod)
        seconds = float(pod["spec"].get("terminationGracePeriodSeconds", 30) if grace is None else grace)

        def mark(obj: Obj) -> None:
            obj["metadata"].update(deletionTimestamp=now(), deletionGracePeriodSeconds=int(seconds))
        marked = self.update("pods", meta["namespace"], meta["name"], mark)
        self._spawn(self._finish_pod(marked, seconds))
        return marked

    async def _finish_pod(self, pod: Obj, grace: float) -> None:
        assert self.terminator is not None
        await self.terminator(pod, grace)
        meta = pod["metadata"]
        if _key("pods", meta["namespace"], meta["name"]) in self.objects:
            self._remove("pods", meta["namespace"], meta["name"], "Background")

    def _terminate_namespace(self, name: str) -> Obj:
        """Terminating until everything in it is gone (Pods take their grace period), then removed."""
        def mark(obj: Obj) -> None:
            obj["metadata"].setdefault("deletionTimestamp", now())
            obj["status"]["phase"] = "Terminating"
        marked = self.update("namespaces", None, name, mark)
        for res, ns, child in [k for k in self.objects if k[1] == name]:
            if (res, ns, child) in self.objects:  # an earlier cascade may have taken it already
                self.delete(res, ns, child, "Background")
        self._spawn(self._finish_namespace(name))
        return marked

    async def _finish_namespace(self, name: str) -> None:
        changed = asyncio.Event()
        self.listeners.append(lambda *_: changed.set())
        listener = self.listeners[-1]
        try:
            while any(key[1] == name for key in self.objects if key[0] != "events"):
                await changed.wait()
                changed.clear()
        finally:
            self.listeners.remove(listener)
        for key in [k for k in self.objects if k[1] == name]:
            self.objects.pop(key, None)
        if _key("namespaces", None, name) in self.objects:
            self._remove("namespaces", None, name, "Background")

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _collect(self, owner_uid: str, propagation: str) -> None:
        for (res, ns, name), obj in list(self.objects.items()):
            refs = obj["metadata"].get("ownerReferences") or []
            if not any(ref["uid"] == owner_uid for ref in refs):
                continue
            if propagation == "Orphan":
                self.update(res, ns, name, _without_owner(owner_uid))
            else:
                self.delete(res, ns, name, "Background")

    def _commit(self, resource: str, obj: Obj, kind: str) -> Obj:
        meta = obj["metadata"]
        info = RESOURCES[resource]
        obj["apiVersion"], obj["kind"] = info.group_version, info.kind
        problems = self._problems(resource, obj)
        if problems:
            self.invalid_writes.append(InvalidWrite(resource, str(meta.get("name")), problems))
            raise ApiError(422, "Invalid", f'{info.kind} "{meta.get("name")}" is invalid: {problems}')
        self._rv += 1
        meta["resourceVersion"] = str(self._rv)
        key = _key(resource, meta.get("namespace"), meta["name"])
        before = self.objects.get(key)
        if before is not None:  # as the API server: generation counts changes of the spec, nothing else
            changed = before.get("spec") != obj.get("spec")
            meta["generation"] = int(before["metadata"].get("generation") or 1) + (1 if changed else 0)
        self.objects[key] = obj
        self._emit(resource, kind, obj, (before["metadata"].get("labels") or {}) if before else None)
        if meta.get("ownerReferences") and not any(self._exists(ref["uid"]) for ref in meta["ownerReferences"]):
            # The garbage collector removes dependents whose owners are all gone, even if they arrived late.
            asyncio.get_running_loop().call_soon(self._collect_orphan, resource, meta.get("namespace"), meta["name"])
        return copy.deepcopy(obj)

    def _exists(self, uid: str) -> bool:
        return any(obj["metadata"]["uid"] == uid for obj in self.objects.values())

    def _collect_orphan(self, resource: str, namespace: str | None, name: str) -> None:
        if _key(resource, namespace, name) in self.objects:
            self.delete(resource, namespace, name, "Background")

    def _problems(self, resource: str, obj: Obj) -> str:
        if not self.validate:
            return ""
        if error := schema_error(obj):
            return error
        return "; ".join(semantic_errors(resource, obj))

    def _emit(self, resource: str, kind: str, obj: Obj, before: dict[str, str] | None = None) -> None:
        rv = self._rv if kind != "DELETED" else self._bump()
        if kind == "DELETED":
            obj["metadata"]["resourceVersion"] = str(rv)
        event = {"type": kind, "object": copy.deepcopy(obj)}
        self._history.append((rv, resource, event, before))
        if len(self._history) == self._history.maxlen:
            self._floor = self._history[0][0] - 1
        for watcher in list(self._watchers):
            watcher.offer(resource, event, before)
        for listener in list(self.listeners):
            listener(resource, kind, copy.deepcopy(obj))

    def _bump(self) -> int:
        self._rv += 1
        return self._rv

    def watch(self, resource: str, namespace: str | None, selector: str | None, since: str | None) -> Watcher:
        """A watcher primed with what happened after ``since`` (everything that exists, when unset)."""
        watcher = Watcher(resource, namespace, selector)
        if since in (None, "", "0"):
            for obj in self.list(resource, namespace, selector):
                watcher.queue.put_nowait({"type": "ADDED", "object": obj})
        else:
            start = int(since or 0)
            if start < self._floor:
                raise ApiError(410, "Expired", f"too old resource version: {start} ({self._floor})")
            for rv, res, event, before in self._history:
                if rv > start:
                    watcher.offer(res, event, before)
        self._watchers.add(watcher)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)

    def drop_watches(self) -> int:
        """End every open watch stream, as an API server restart or load balancer timeout would."""
        dropped = list(self._watchers)
        for watcher in dropped:
            watcher.queue.put_nowait(None)
        self._watchers.clear()
        return len(dropped)

    def compact(self) -> None:
        """Forget the event history: watches resumed from an older resourceVersion get 410 Gone."""
        self._history.clear()
        self._floor = self._rv

    def owned_by(self, resource: str, owner_uid: str) -> Iterable[Obj]:
        return [copy.deepcopy(obj) for (res, _, _), obj in self.objects.items() if res == resource
                and any(ref["uid"] == owner_uid for ref in obj["metadata"].get("ownerReferences") or [])]
