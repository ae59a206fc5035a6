"""``KubernetesApps``: the ``Apps`` protocol on a cluster; each app is a Deployment and what it owns.

``apply`` creates (Deployment at zero replicas in the owner's verified namespace, then its
Secret, Service, NetworkPolicy and, when public, Ingress, all owned by it, then the replicas) or
converges (a new ``revision`` rewrites the Secret and patches the pod template, which rolls the
Pods; other ``replicas`` patch the count; a visibility change adds or removes the Ingress).

State comes only from the runtime's watches: Deployments and Pods labelled as kubegate's feed
``on_deployment`` / ``on_pod``, an app is matched by the ``kubegate.dev/deployment`` annotation
its objects carry, and every change of its ``AppStatus`` (``k8s.appstatus``) is emitted once.
After a restart the watches' first lists rebuild the state; ``recover`` then converges what the
engine knows, re-creates what vanished and deletes strays.

A process that does not keep the apps (a follower replica, a ``kubegate stdio`` beside the
gateway) reads them from the same watches, which its first read starts: the objects carry the app
by their annotation, so logs, metrics and the Service's endpoint need no spec.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from k8s import appstatus, deployments
from k8s.client import KubeClient, Obj
from k8s.manifests import Placement, label_value, namespace_name
from k8s.namespaces import NamespaceGuard
from k8s.podlogs import read_lines
from mcp_server import errors
from mcp_server.config import Settings
from mcp_server.models.templates import quantity_value
from mcp_server.runtime.apps import (
    AppEvent,
    AppIngress,
    AppMetrics,
    AppRef,
    AppSpec,
    AppStatus,
    LogLine,
    ReplicaMetrics,
)
from mcp_server.runtime.base import Endpoint

log = logging.getLogger(__name__)

DEFAULT_DOMAIN = "apps.localhost"
SYNC_SECONDS = 30.0
"""How long a call waits for the watches' first lists before answering 503."""


@dataclass(eq=False)
class _App:
    name: str
    namespace: str
    object_name: str
    spec: AppSpec | None = None
    deployment: Obj | None = None
    pods: dict[str, Obj] = field(default_factory=dict)
    deleting: bool = False
    last: AppStatus | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    """Set whenever the Deployments watch brings this app's Deployment."""
    service: Endpoint | None = None
    """The Service's ``clusterIP:port``, from the Services watch: where the gateway's proxy reaches the app."""


class KubernetesApps:
    def __init__(self, settings: Settings, kube: Callable[[], Awaitable[KubeClient]],
                 synced: Callable[[], Awaitable[None]], guard: NamespaceGuard, placement: Placement,
                 spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]]) -> None:
        self._settings = settings
        self._kube = kube
        self._synced = synced
        self._guard = guard
        self._placement = placement
        self._spawn = spawn
        self.domain = settings.apps_domain or DEFAULT_DOMAIN
        self._apps: dict[str, _App] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._queue: asyncio.Queue[AppEvent] = asyncio.Queue()

    # Watch handlers --------------------------------------------------------------------------------

    def _app_of(self, obj: Obj) -> _App | None:
        meta = obj["metadata"]
        name = (meta.get("annotations") or {}).get(deployments.APP_ANNOTATION)
        if not name:
            return None
        app = self._apps.get(name)
        if app is None:
            app = self._apps[name] = _App(name, meta["namespace"], deployments.object_name(name))
        # An object claiming an app of another namespace (so of another owner) is not that app's.
        return app if app.namespace == meta["namespace"] else None

    def on_deployment(self, kind: str, obj: Obj) -> None:
        app = self._app_of(obj)
        if app is None or obj["metadata"]["name"] != app.object_name:
            return
        app.deployment = None if kind == "DELETED" else obj
        if app.deployment is not None:
            app.arrived.set()
        self._changed(app)

    def on_pod(self, kind: str, obj: Obj) -> None:
        meta = obj["metadata"]
        if deployments.APP_ANNOTATION not in (meta.get("annotations") or {}):
            return
        app = self._app_of(obj)
        if app is None:
            return
        if kind == "DELETED":
            app.pods.pop(meta["name"], None)
        else:
            app.pods[meta["name"]] = obj
        self._changed(app)

    def on_service(self, kind: str, obj: Obj) -> None:
        app = self._app_of(obj)  # after a restart the Services list may come before the Deployments'
        if app is None or obj["metadata"]["name"] != app.object_name:
            return
        spec = obj.get("spec") or {}
        address, ports = spec.get("clusterIP"), spec.get("ports") or []
        usable = kind != "DELETED" and address and address != "None" and ports
        app.service = Endpoint(host=str(address), port=int(ports[0]["port"])) if usable else None

    def relisted(self, objs: list[Obj]) -> None:
        """Deployments that vanished while the watch was interrupted are gone."""
        present = {(o["metadata"].get("annotations") or {}).get(deployments.APP_ANNOTATION) for o in objs}
        for app in list(self._apps.values()):
            if app.deployment is not None and app.name not in present:
                app.deployment = None
                self._changed(app)

    def _changed(self, app: _App) -> None:
        if app.deleting and app.deployment is None and not app.pods:
            self._apps.pop(app.name, None)
            self._queue.put_nowait(AppEvent(app.name, datetime.now(UTC), None))
            return
        if app.spec is None and app.deployment is None:
            # Pods of an app this process knows nothing of: not yet listed, or left over from a deleted one.
            if not app.pods:
                self._apps.pop(app.name, None)
            return
        current = self._status(app)
        if current != app.last:
            app.last = current
            self._queue.put_nowait(AppEvent(app.name, datetime.now(UTC), current))

    def _status(self, app: _App) -> AppStatus:
        spec = app.spec
        desired = spec.replicas if spec else int((app.deployment or {}).get("spec", {}).get("replicas") or 0)
        port = spec.port if spec else _port(app.deployment)
        public = spec.public if spec else False
        ingresses = [AppIngress(app.object_name, deployments.host(spec, self.domain))] if spec and public else []
        status = appstatus.app_status(app.name, desired, port, app.deployment, list(app.pods.values()), ingresses)
        if app.deployment is None and spec is not None and app.last is not None and app.last.phase != "Pending":
            return AppStatus(app.name, "Error", desired, last_error="the Deployment was deleted outside kubegate",
                             ingresses=tuple(ingresses))
        return status

    # The protocol ------------------------------------------------------------------------------------

    async def apply(self, spec: AppSpec) -> None:
        kube = await self._kube()
        await self._synced()
        async with self._locks.setdefault(spec.name, asyncio.Lock()):  # one change of an app at a time, here
            await self._apply(kube, spec)

    async def _apply(self, kube: KubeClient, spec: AppSpec) -> None:
        app = self._apps.get(spec.name)
        namespace = namespace_name(self._settings.namespace_prefix, spec.owner)
        if app is not None and app.namespace != namespace:
            raise errors.Conflict(f"deployment {spec.name} belongs to another owner")
        if app is None:
            app = self._apps[spec.name] = _App(spec.name, namespace, deployments.object_name(spec.name))
        previous, app.spec, app.deleting = app.spec, spec, False
        if app.deployment is None:
            self._changed(app)
            try:
                await self._create(kube, app, spec)
            except errors.Conflict:  # another gateway process made it first: converge once the watch has it
                await self._seen(app)
                await self._converge(kube, app, None, spec)
        else:
            await self._converge(kube, app, previous, spec)
        self._changed(app)

    async def _seen(self, app: _App) -> None:
        try:
            async with asyncio.timeout(SYNC_SECONDS):
                while app.deployment is None:
                    app.arrived.clear()
                    await app.arrived.wait()
        except TimeoutError:
            raise errors.Unavailable(f"deployment {app.name} exists but no watch has shown it; try again") from None

    async def _create(self, kube: KubeClient, app: _App, spec: AppSpec) -> None:
        ns = app.namespace
        await self._guard.ensure(ns, spec.owner, label_value(spec.owner))
        created = await kube.create(deployments.deployment(
            spec, ns, placement=self._placement, replicas=0,
            progress_deadline=self._settings.progress_deadline_seconds))
        try:
            await _create_or_replace(kube, deployments.secret(spec, ns, created))
            await _create_or_keep(kube, deployments.service(spec, ns, created))
            await _create_or_replace(kube, self._policy(spec, ns, created))
            if spec.public:
                await _create_or_keep(kube, self._ingress(spec, ns, created))
            await kube.patch("Deployment", ns, app.object_name, {"spec": {"replicas": spec.replicas}})
        except errors.KubegateError:
            await kube.delete("Deployment", ns, app.object_name)  # takes whatever it already owned
            raise

    async def _converge(self, kube: KubeClient, app: _App, previous: AppSpec | None, spec: AppSpec) -> None:
        assert app.deployment is not None
        ns, dep = app.namespace, app.deployment
        patch: Obj = {}
        if previous is None:  # after a restart: whatever an interrupted apply left out is made now
            await _create_or_keep(kube, deployments.service(spec, ns, dep))
        if previous is None or appstatus.revision(dep) != spec.revision:
            await _create_or_replace(kube, deployments.secret(spec, ns, dep))
        if appstatus.revision(dep) != spec.revision:
            patch = deployments.template_patch(spec, ns, placement=self._placement)
        if dep["spec"].get("replicas") != spec.replicas or patch:
            patch.setdefault("spec", {})["replicas"] = spec.replicas
        if patch:
            await kube.patch("Deployment", ns, app.object_name, patch)
        if previous is None or previous.public != spec.public or previous.port != spec.port:
            await _create_or_replace(kube, self._policy(spec, ns, dep))
            if spec.public:
                await _create_or_keep(kube, self._ingress(spec, ns, dep))
            else:
                await kube.delete("Ingress", ns, app.object_name)

    def _policy(self, spec: AppSpec, namespace: str, owner: Obj) -> Obj:
        return deployments.ingress_policy(spec, namespace, owner, ingress_namespace=self._settings.ingress_namespace)

    def _ingress(self, spec: AppSpec, namespace: str, owner: Obj) -> Obj:
        return deployments.ingress(spec, namespace, owner, domain=self.domain,
                                   ingress_class=self._settings.ingress_class)

    async def delete(self, name: str) -> None:
        kube = await self._kube()
        await self._synced()
        async with self._locks.setdefault(name, asyncio.Lock()):
            await self._delete(kube, name)

    async def _delete(self, kube: KubeClient, name: str) -> None:
        app = self._apps.get(name)
        if app is None:
            self._queue.put_nowait(AppEvent(name, datetime.now(UTC), None))
            return
        app.deleting = True
        if app.deployment is not None:
            await kube.delete("Deployment", app.namespace, app.object_name)
        self._changed(app)

    def status(self, name: str) -> AppStatus | None:
        app = self._apps.get(name)
        if app is None or app.deleting or (app.spec is None and app.deployment is None):
            return None
        return app.last or self._status(app)

    async def _watched(self, name: str) -> tuple[KubeClient, _App | None]:
        """The app as the watches show it (started by this call in a process that keeps no app)."""
        kube = await self._kube()
        await self._synced()
        return kube, self._apps.get(name)

    async def read_logs(self, ref: AppRef, *, tail: int, since: datetime | None = None,
                        replica: str | None = None) -> Sequence[LogLine]:
        kube, app = await self._watched(ref.name)
        if app is None:
            return []
        pods = sorted(p for p in app.pods if replica is None or p == replica)
        lines: list[LogLine] = []
        for pod in pods:
            lines += await read_lines(kube, app.namespace, pod, deployments.CONTAINER, since)
        lines.sort(key=lambda line: line.at)
        return lines[-tail:] if tail > 0 else []

    async def metrics(self, ref: AppRef) -> AppMetrics:
        name = ref.name
        kube, app = await self._watched(name)
        if app is None:
            raise errors.NotFound(f"deployment {name} not found")
        pods = {p: app.pods[p] for p in sorted(app.pods)}
        restarts = {p: appstatus.restarts(pod) for p, pod in pods.items()}
        selector = ",".join(f"{k}={v}" for k, v in {deployments.APP_LABEL: label_value(name)}.items())
        try:
            measured = await kube.pod_metrics(app.namespace, selector)
        except errors.KubegateError as exc:
            reason = "metrics.k8s.io is not served by this cluster (install metrics-server)" \
                if isinstance(exc, errors.NotFound) else f"metrics.k8s.io did not answer: {exc.message}"
            return AppMetrics(name, False, [ReplicaMetrics(p, n) for p, n in restarts.items()], reason)
        usage = {item["metadata"]["name"]: item for item in measured}
        return AppMetrics(name, True, [_replica_metrics(p, n, usage.get(p)) for p, n in restarts.items()])

    async def endpoints(self, ref: AppRef) -> Sequence[Endpoint]:
        _, app = await self._watched(ref.name)
        # Any ready Pod counts, of any revision: during a rolling update the Service still sends traffic to
        # the old revision's ready Pods while the new one's come up, so the app is reachable throughout.
        if (app is None or app.service is None or app.last is None or app.deleting
                or not any(replica.ready for replica in app.last.replica_status)):
            return []
        return [app.service]

    async def events(self) -> AsyncIterator[AppEvent]:
        await self._kube()
        while True:
            yield await self._queue.get()

    async def recover(self, specs: Sequence[AppSpec]) -> None:
        await self._kube()
        await self._synced()
        wanted = {spec.name for spec in specs}
        prefix = self._settings.namespace_prefix  # another install on the cluster uses another prefix: not ours
        for app in list(self._apps.values()):
            if app.name not in wanted and app.deployment is not None and app.namespace.startswith(prefix):
                log.info("deleting deployment %s: the gateway no longer knows it", app.name)
                await self.delete(app.name)
        for spec in specs:
            try:
                await self.apply(spec)
            except errors.KubegateError as exc:
                log.warning("cannot recover deployment %s: %s", spec.name, exc.message)
            if (recovered := self._apps.get(spec.name)) is not None:
                recovered.last = None  # emit the current status even when unchanged
                self._changed(recovered)

    async def close(self) -> None:
        pass  # the runtime owns the watches and the client


async def _create_or_keep(kube: KubeClient, obj: Obj) -> None:
    try:
        await kube.create(obj)
    except errors.Conflict:
        pass


async def _create_or_replace(kube: KubeClient, obj: Obj) -> None:
    try:
        await kube.create(obj)
    except errors.Conflict:
        await kube.replace(obj)


def _port(deployment: Obj | None) -> int:
    for container in (deployment or {}).get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []:
        for entry in container.get("ports") or []:
            return int(entry["containerPort"])
    return 0


def _replica_metrics(replica: str, restarts: int, item: Obj | None) -> ReplicaMetrics:
    for container in (item or {}).get("containers") or []:
        if container.get("name") == deployments.CONTAINER:
            usage = container.get("usage") or {}
            return ReplicaMetrics(replica, restarts, cpu_cores=cores(usage.get("cpu")),
                                  memory_bytes=memory_bytes(usage.get("memory")))
    return ReplicaMetrics(replica, restarts)


def _quantity(text: str | None) -> Decimal | None:
    """A metrics quantity (``123456n``, ``5m``, ``1``, ``2048Ki``); ``None`` when absent or unreadable."""
    if not text:
        return None
    scale = {"n": Decimal("1e-9"), "u": Decimal("1e-6")}.get(text[-1])
    try:
        return Decimal(text[:-1]) * scale if scale is not None else quantity_value(text)
    except (ArithmeticError, ValueError):
        return None


def cores(text: str | None) -> float | None:
    value = _quantity(text)
    return None if value is None else float(value)


def memory_bytes(text: str | None) -> int | None:
    value = _quantity(text)
    return None if value is None else int(value)
