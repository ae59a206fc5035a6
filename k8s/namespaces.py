"""``NamespaceGuard``: a user namespace holds its policy before anything runs there, fail closed.

``ensure(namespace, owner)`` creates or repairs the Namespace (labels), then every object of
``NamespacePolicy.objects`` (create; on conflict read, and replace what drifted). A namespace
verified once is remembered, so a start in it costs a set lookup. Watches on those kinds
(``watch_kinds``) keep the memory honest: an object deleted or changed behind the gateway's
back forgets the namespace and repairs it at once, so the policy is back before the next start
there; a relist (a gap in the watch) forgets every namespace. A change seen while a repair is
under way makes that repair not count (``_epoch``), so no stale verdict is remembered.

Any failure is ``Unavailable`` for the caller: a run never starts in a namespace whose policy
could not be ensured. Other workload kinds (sandboxes) call the same ``ensure``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from k8s.client import Kind, KubeClient, Obj
from k8s.policy import OWNER_ANNOTATION, NamespacePolicy, drifted
from mcp_server import errors

log = logging.getLogger(__name__)

WATCH_KINDS: tuple[Kind, ...] = ("namespaces", "rolebindings", "networkpolicies", "resourcequotas", "limitranges")
_KIND_OF = {"rolebindings": "RoleBinding", "networkpolicies": "NetworkPolicy",
            "resourcequotas": "ResourceQuota", "limitranges": "LimitRange"}
FORBIDDEN_RETRIES = (0.05, 0.2, 0.5, 1.0)
"""A new RoleBinding takes a moment to reach the API server's authorizer; a 403 right after it is retried."""


class NamespaceGuard:
    def __init__(self, policy: NamespacePolicy, kube: Callable[[], Awaitable[KubeClient]],
                 spawn: Callable[[Coroutine[Any, Any, None]], object]) -> None:
        self.policy = policy
        self._kube = kube
        self._spawn = spawn
        self._verified: set[str] = set()
        self._owners: dict[str, tuple[str, str]] = {}
        self._epoch: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.repairs = 0

    def verified(self, namespace: str) -> bool:
        return namespace in self._verified

    async def ensure(self, namespace: str, owner: str, owner_label: str) -> None:
        """Return once ``namespace`` holds its whole policy; ``Unavailable`` when that cannot be made true."""
        if namespace in self._verified:
            return
        self._owners[namespace] = (owner, owner_label)
        async with self._locks.setdefault(namespace, asyncio.Lock()):
            if namespace in self._verified:
                return
            epoch = self._epoch.get(namespace, 0)
            try:
                await self._reconcile(await self._kube(), namespace, owner, owner_label)
            except errors.KubegateError as exc:
                raise errors.Unavailable(
                    f"the namespace for your runs could not be secured ({exc.message}); nothing was started, "
                    "try again shortly or ask the operator") from exc
            if self._epoch.get(namespace, 0) == epoch:
                self._verified.add(namespace)

    def forget(self, namespace: str) -> None:
        self._verified.discard(namespace)
        self._epoch[namespace] = self._epoch.get(namespace, 0) + 1

    async def _reconcile(self, kube: KubeClient, namespace: str, owner: str, owner_label: str) -> None:
        await self._namespace(kube, namespace, owner, owner_label)
        for desired in self.policy.objects(namespace):
            for delay in (*FORBIDDEN_RETRIES, None):
                try:
                    await self._converge(kube, desired)
                    break
                except errors.Forbidden:
                    if delay is None or desired["kind"] == "RoleBinding":
                        raise
                    await asyncio.sleep(delay)

    async def _namespace(self, kube: KubeClient, name: str, owner: str, owner_label: str) -> None:
        desired = self.policy.namespace(name, owner, owner_label)
        try:
            await kube.create_namespace(desired)
            return
        except errors.Conflict:
            actual = await kube.read_namespace(name)
        if actual["metadata"].get("deletionTimestamp") or actual.get("status", {}).get("phase") == "Terminating":
            raise errors.Unavailable(f"namespace {name} is being deleted")
        annotations = actual["metadata"].get("annotations") or {}
        if annotations.get(OWNER_ANNOTATION) not in (None, owner):
            raise errors.Conflict(f"namespace {name} belongs to someone else")
        if drifted(desired, actual):
            await kube.label_namespace(name, desired["metadata"]["labels"])

    async def _converge(self, kube: KubeClient, desired: Obj) -> None:
        try:
            await kube.create(desired)
            return
        except errors.Conflict:
            meta = desired["metadata"]
            actual = await kube.read(desired["kind"], meta["namespace"], meta["name"])
        if drifted(desired, actual):
            log.warning("%s %s/%s drifted from kubegate's policy; restoring it", desired["kind"],
                        desired["metadata"]["namespace"], desired["metadata"]["name"])
            merged = {**desired, "metadata": {**actual["metadata"], "labels": {
                **(actual["metadata"].get("labels") or {}), **desired["metadata"]["labels"]}}}
            await kube.replace(merged)

    def watched(self, kind: Kind) -> Callable[[str, Obj], None]:
        """The watch handler for ``kind``: forgets (and repairs) a namespace whose policy changed."""
        def handle(event: str, obj: Obj) -> None:
            meta = obj["metadata"]
            namespace = meta["name"] if kind == "namespaces" else meta.get("namespace", "")
            if namespace not in self._owners or not self._changed(kind, event, obj):
                return
            was_verified = namespace in self._verified
            self.forget(namespace)  # also voids a check under way, which may have read the old state
            going = kind == "namespaces" and (event == "DELETED" or bool(meta.get("deletionTimestamp")))
            if was_verified and not going:  # a namespace being deleted is made again by the next start
                self._spawn(self._repair(namespace))
        return handle

    def _changed(self, kind: Kind, event: str, obj: Obj) -> bool:
        going = event == "DELETED" or bool(obj["metadata"].get("deletionTimestamp"))
        if kind == "namespaces":
            owner, owner_label = self._owners.get(obj["metadata"]["name"], ("", ""))
            return going or drifted(self.policy.namespace(obj["metadata"]["name"], owner, owner_label), obj)
        desired = {d["metadata"]["name"]: d for d in self.policy.objects(obj["metadata"]["namespace"])
                   if d["kind"] == _KIND_OF[kind]}.get(obj["metadata"]["name"])
        # Not one of the policy's objects (a sandbox's own NetworkPolicy, say): its coming and going is no drift.
        return desired is not None and (going or drifted(desired, obj))

    def relisted(self, _: list[Obj]) -> None:
        """After a gap in a watch nothing verified before it can be trusted."""
        for namespace in list(self._verified):
            self.forget(namespace)

    async def _repair(self, namespace: str) -> None:
        owner, owner_label = self._owners[namespace]
        self.repairs += 1
        try:
            await self.ensure(namespace, owner, owner_label)
        except errors.KubegateError as exc:
            log.warning("repairing the policy of %s failed (%s); the next start there tries again",
                        namespace, exc.message)
