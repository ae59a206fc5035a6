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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kubernetes_validate

from k8s.sim.checks import semantic_errors
from k8s.sim.selectors import matches

Obj = dict[str, Any]
Listener = Callable[[str, str, Obj], None]
SCHEMA_VERSION = "1.33.0"


@dataclass(frozen=True, slots=True)
class Resource:
    group_version: str
    kind: str
    namespaced: bool = True


RESOURCES: dict[str, Resource] = {
    "namespaces": Resource("v1", "Namespace", namespaced=False),
    "secrets": Resource("v1", "Secret"),
    "pods": Resource("v1", "Pod"),
    "jobs": Resource("batch/v1", "Job"),
    "networkpolicies": Resource("networking.k8s.io/v1", "NetworkPolicy"),
}
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

    def offer(self, resource: str, event: Obj) -> None:
        meta = event["object"]["metadata"]
        if resource != self.resource or (self.namespace and meta.get("namespace") != self.namespace):
            return
        if matches(self.selector, meta.get("labels") or {}):
            self.queue.put_nowait(event)


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
        self._rv = 0
        self._floor = 0
        self._history: deque[tuple[int, str, Obj]] = deque(maxlen=history)
        self._watchers: set[Watcher] = set()

    @property
    def resource_version(self) -> str:
        return str(self._rv)

    def get(self, resource: str, namespace: str | None, name: str) -> Obj:
        obj = self.objects.get(_key(resource, namespace, name))
        if obj is None:
            raise ApiError(404, "NotFound", f'{resource} "{name}" not found')
        return copy.deepcopy(obj)

    def list(self, resource: str, namespace: str | None, selector: str | None) -> list[Obj]:
        return [copy.deepcopy(obj) for (res, ns, _), obj in sorted(self.objects.items())
                if res == resource and (not namespace or ns == namespace)
                and matches(selector, obj["metadata"].get("labels") or {})]

    def create(self, resource: str, namespace: str | None, body: Obj) -> Obj:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if RESOURCES[resource].namespaced:
            meta["namespace"] = namespace
            if _key("namespaces", None, namespace or "") not in self.objects:
                raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found')
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
        return self._commit(resource, obj, "ADDED")

    def update(self, resource: str, namespace: str | None, name: str, mutate: Callable[[Obj], None]) -> Obj:
        """Read-modify-write, the way controllers and PATCH requests change an object."""
        obj = self.get(resource, namespace, name)
        mutate(obj)
        return self._commit(resource, obj, "MODIFIED")

    def delete(self, resource: str, namespace: str | None, name: str, propagation: str | None = None) -> Obj:
        obj = self.objects.pop(_key(resource, namespace, name), None)
        if obj is None:
            raise ApiError(404, "NotFound", f'{resource} "{name}" not found')
        obj = copy.deepcopy(obj)
        obj["metadata"]["deletionTimestamp"] = now()
        self._emit(resource, "DELETED", obj)
        if resource == "namespaces":
            for res, ns, child in [k for k in self.objects if k[1] == name]:
                if (res, ns, child) in self.objects:  # an earlier cascade may have taken it already
                    self.delete(res, ns, child, "Background")
        self._collect(obj["metadata"]["uid"], propagation or DEFAULT_PROPAGATION.get(resource, "Background"))
        return obj

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
        self.objects[_key(resource, meta.get("namespace"), meta["name"])] = obj
        self._emit(resource, kind, obj)
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
        try:
            kubernetes_validate.validate(obj, SCHEMA_VERSION, strict=True)
        except Exception as exc:  # every validator failure is a 422, whatever its type
            return str(exc).split("\n", 1)[0]
        return "; ".join(semantic_errors(resource, obj))

    def _emit(self, resource: str, kind: str, obj: Obj) -> None:
        rv = self._rv if kind != "DELETED" else self._bump()
        if kind == "DELETED":
            obj["metadata"]["resourceVersion"] = str(rv)
        event = {"type": kind, "object": copy.deepcopy(obj)}
        self._history.append((rv, resource, event))
        if len(self._history) == self._history.maxlen:
            self._floor = self._history[0][0] - 1
        for watcher in list(self._watchers):
            watcher.offer(resource, event)
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
            for rv, res, event in self._history:
                if rv > start:
                    watcher.offer(res, event)
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
