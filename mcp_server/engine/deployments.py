"""Deployments: a user's long-running apps, from a template or a raw image, kept by the runtime's ``Apps``.

The store holds what each deployment should be (its spec, pinned template version, env) and the
last status the runtime reported; the runtime converges on the spec (``Apps.apply``) and reports
every change as an event, which this service writes down (no polling). Deleting marks the row
``Deleting``; it goes once the runtime says the app is gone.

A process that did not start a deployment (a ``kubegate stdio`` beside the gateway, or the other
way round) takes it over on first use (``ensure``): ``apply`` re-attaches to replicas that run.
The recovering process (``kubegate serve``) does not wait for a use: it ``follow``s the store's
change signal (inotify + ``data_version`` on SQLite, ``NOTIFY`` on PostgreSQL), and each change
another process commits makes it take over every deployment it does not keep yet once that is
``Ready`` or ``Error`` (its replicas fully up: re-attaching earlier races their start), so a
``kubegate stdio`` that created one and exited leaves nothing unrecorded (crashes, restarts, Ready).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import string
from collections.abc import Coroutine, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

from mcp_server.config import Settings
from mcp_server.engine.dispatcher import Dispatcher
from mcp_server.engine.workloads import public_url, removed_on_failure, required
from mcp_server.errors import BadRequest, Conflict, NotFound, ValidationFailed
from mcp_server.ids import stamp, utcnow
from mcp_server.models.deployments import DeploymentCreate, DeploymentUpdate
from mcp_server.runtime.apps import (
    AppEvent,
    AppMetrics,
    AppResources,
    Apps,
    AppSpec,
    LogLine,
    ReplicaStatus,
    apps_of,
)
from mcp_server.runtime.base import Endpoint, Runtime
from mcp_server.store.changes import StoreChanges
from mcp_server.store.deployments import DeploymentRecord, DeploymentRepository, ReplicaRecord
from mcp_server.store.templates import EnvVar, TemplateStore

logger = logging.getLogger(__name__)

DEFAULT_DOMAIN = "apps.localhost"
_SUFFIX = string.ascii_lowercase + string.digits


class DeploymentService:
    def __init__(self, repo: DeploymentRepository, templates: TemplateStore, runtime: Runtime,
                 dispatcher: Dispatcher, settings: Settings) -> None:
        self.repo = repo
        self.templates = templates
        self.runtime = runtime
        self.apps = apps_of(runtime)
        self.dispatcher = dispatcher
        self.settings = settings
        self.domain = settings.apps_domain or DEFAULT_DOMAIN
        self._applied: dict[str, tuple[int, int]] = {}
        self._consumer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._following = False
        self._adopting: asyncio.Task[None] | None = None
        self._stale = False

    def url(self, name: str) -> str:
        return public_url(self.settings, self.host(name))

    def host(self, name: str) -> str:
        return f"{name}.{self.domain}"

    def _require_apps(self) -> Apps:
        return required(self.apps, self.runtime.name, "deployments")

    async def create(self, user_id: str, args: DeploymentCreate) -> DeploymentRecord:
        apps = self._require_apps()
        now = stamp()
        base = await self._base(args)
        record = replace(base, name=await self._new_name(args.template or base.image), user_id=user_id,
                         replicas=args.replicas, visibility=args.visibility,
                         network=base.network if args.network is None else args.network,
                         created_at=now, updated_at=now,
                         env=_merge(base.env, args.env_vars))
        await self.repo.insert(record, max_per_user=self.settings.max_deployments_per_user)
        async with removed_on_failure(lambda: self.repo.delete(record.name)):
            await self._apply(apps, record)
        return record

    async def _base(self, args: DeploymentCreate) -> DeploymentRecord:
        """What the template (or the image, port and command) says; name and owner are filled in later."""
        if (args.template is None) == (args.image is None):
            raise ValidationFailed("give either template or image (with port)", field="template")
        if args.template is not None:
            record = await self._from_template(args.template, None)
            return replace(record, command=tuple(args.command) if args.command else record.command)
        if args.port is None:
            raise ValidationFailed("is required with image", field="port")
        if args.command is None and self.runtime.name == "local":
            raise ValidationFailed("is required on the local runtime, which runs a command, not an image",
                                   field="command")
        assert args.image is not None
        return _blank(image=args.image, port=args.port, command=tuple(args.command) if args.command else None)

    async def _from_template(self, name: str, version: int | None) -> DeploymentRecord:
        found = await self.templates.get(name, version)
        if found is None or (version is None and not found.spec.enabled):
            what = f"version {version} of template '{name}'" if version else f"template '{name}'"
            raise BadRequest(f"There is no enabled {what}; templates_list shows the ones you can deploy")
        spec = found.spec
        return replace(_blank(image=spec.image, port=spec.port, command=spec.command), template=spec.name,
                       template_version=found.version, health_path=spec.health_check_path,
                       cpu_request=spec.cpu_request, cpu_limit=spec.cpu_limit, memory_request=spec.memory_request,
                       memory_limit=spec.memory_limit, env=spec.env, network=spec.network)

    async def _new_name(self, base: str) -> str:
        stem = re.sub(r"[^a-z0-9]+", "-", base.rsplit("/", 1)[-1].split(":")[0].split("@")[0].lower()).strip("-")
        stem = stem[:40].rstrip("-") or "app"
        while True:  # 36^6 names per stem: a clash is rare, and then another is drawn
            name = f"{stem}-{''.join(secrets.choice(_SUFFIX) for _ in range(6))}"
            if await self.repo.by_name(name) is None:
                return name

    def spec(self, record: DeploymentRecord) -> AppSpec:
        return AppSpec(
            name=record.name, owner=record.user_id, image=record.image, port=record.port,
            command=record.command or (), env={e.name: e.value for e in record.env if not e.secret},
            secret_env={e.name: e.value for e in record.env if e.secret}, health_path=record.health_path,
            replicas=record.replicas, revision=record.revision, public=record.visibility == "public",
            network=record.network,
            host=self.host(record.name), labels={"deployment": record.name},
            resources=AppResources(record.cpu_request, record.cpu_limit, record.memory_request, record.memory_limit),
        )

    async def _apply(self, apps: Apps, record: DeploymentRecord) -> None:
        await apps.apply(self.spec(record))
        self._applied[record.name] = (record.revision, record.replicas)

    async def ensure(self, record: DeploymentRecord) -> None:
        """Have this process's runtime keep ``record`` as stored (another process may have changed it)."""
        if self.apps is not None and record.status != "Deleting" and \
                self._applied.get(record.name) != (record.revision, record.replicas):
            full = await self.repo.by_name(record.name)  # ``record`` may come without its env
            if full is not None:
                await self._apply(self.apps, full)

    async def get(self, user_id: str, name: str) -> DeploymentRecord:
        record = await self.repo.get(user_id, name)
        if record is None:
            raise NotFound(f"Deployment '{name}' not found; deployments_list shows yours")
        await self.ensure(record)
        return record

    async def list(self, user_id: str, status: str | None) -> list[DeploymentRecord]:
        return await self.repo.list(user_id, "Ready" if status == "running" else status)

    async def _changeable(self, user_id: str, name: str) -> DeploymentRecord:
        record = await self.get(user_id, name)
        if record.status == "Deleting":
            raise Conflict(f"Deployment '{name}' is being deleted")
        return record

    async def scale(self, user_id: str, name: str, replicas: int) -> DeploymentRecord:
        record = await self._changeable(user_id, name)
        record = replace(record, replicas=replicas, updated_at=stamp())
        await self.repo.replace(record)
        await self._apply(self._require_apps(), record)
        return record

    async def update(self, user_id: str, name: str, args: DeploymentUpdate) -> DeploymentRecord:
        record = await self._changeable(user_id, name)
        if args.template_version is not None:
            if record.template is None:
                raise ValidationFailed("only a deployment from a template has a template version",
                                       field="templateVersion")
            pinned = await self._from_template(record.template, args.template_version)
            own = {e.name: e.value for e in record.env if e.name not in {t.name for t in pinned.env}}
            record = replace(record, **{f: getattr(pinned, f) for f in _TEMPLATE_FIELDS},
                             env=_merge(pinned.env, own))
        if args.image is not None:
            record = replace(record, image=args.image)
        if args.env_vars:
            record = replace(record, env=_merge(record.env, args.env_vars))
        if args.network is not None:
            record = replace(record, network=args.network)
        record = replace(record, revision=record.revision + 1, updated_at=stamp())
        await self.repo.replace(record)
        await self._apply(self._require_apps(), record)
        return record

    async def delete(self, user_id: str, name: str) -> DeploymentRecord:
        record = await self.get(user_id, name)
        await self.repo.mark_deleting(name, stamp())
        self._applied.pop(name, None)  # from now on its events are not this process's business
        self._spawn(self._remove(name))
        return replace(record, status="Deleting")

    async def _remove(self, name: str) -> None:
        if self.apps is not None:
            await self.apps.delete(name)  # its event removes the row
        else:
            await self.repo.delete(name)
            self.dispatcher.changed(name)

    async def logs(self, user_id: str, name: str, *, tail: int, since: int | None,
                   replica: str | None) -> Sequence[LogLine]:
        record = await self.get(user_id, name)
        await self.ensure(record)
        after = utcnow() - timedelta(seconds=since) if since is not None else None
        return await self._require_apps().read_logs(name, tail=tail, since=after, replica=replica)

    async def metrics(self, user_id: str, name: str) -> AppMetrics:
        record = await self.get(user_id, name)
        await self.ensure(record)
        return await self._require_apps().metrics(name)

    async def by_host(self, label: str) -> DeploymentRecord | None:
        record = await self.repo.by_name(label, env=False)
        if record is not None:
            await self.ensure(record)
        return record

    def endpoints(self, name: str) -> Sequence[Endpoint]:
        return self.apps.endpoints(name) if self.apps is not None else []

    async def on_event(self, event: AppEvent) -> None:
        """Write down what the runtime reports; first converge on the stored spec if another process changed it."""
        if event.status is None:
            await self.repo.delete(event.name)
        else:
            record = await self.repo.by_name(event.name, env=False)
            if record is None or record.status == "Deleting":  # deleted through another process
                if self.apps is not None and self._applied.pop(event.name, None) is not None:
                    self._spawn(self.apps.delete(event.name))
                return
            await self.ensure(record)
            s = event.status
            await self.repo.set_status(event.name, s.phase, s.ready_replicas, s.last_error, stamp(event.at),
                                       [_replica(r) for r in s.replica_status])
        self.dispatcher.changed(event.name)

    def start(self) -> None:
        """Write down the runtime's app events from now on."""
        if self.apps is not None and self._consumer is None:
            self._consumer = asyncio.get_running_loop().create_task(self._consume(self.apps), name="kubegate-apps")

    async def _consume(self, apps: Apps) -> None:
        async for event in apps.events():
            try:
                await self.on_event(event)
            except Exception:
                logger.exception("recording the status of deployment %s failed", event.name)

    async def recover(self) -> None:
        """After a restart: the runtime re-attaches to every deployment; those being deleted go."""
        if self.apps is None:
            return
        records = await self.repo.all()
        live = [r for r in records if r.status != "Deleting"]
        await self.apps.recover([self.spec(r) for r in live])
        self._applied.update({r.name: (r.revision, r.replicas) for r in live})
        for record in records:
            if record.status == "Deleting":
                self._spawn(self._remove(record.name))

    def follow(self, changes: StoreChanges) -> None:
        """Take over, as soon as another process commits them, the deployments it creates or changes."""
        if self.apps is not None and not self._following:
            self._following = True
            changes.listen(self._store_changed)

    def _store_changed(self) -> None:
        self._stale = True  # a change during a pass makes one more pass, never a second task
        if self._adopting is None or self._adopting.done():
            self._adopting = asyncio.get_running_loop().create_task(self._adopt_all(), name="kubegate-apps-adopt")

    async def _adopt_all(self) -> None:
        while self._stale:
            self._stale = False
            try:
                for record in await self.repo.all():
                    # Only what its maker has brought up (Ready or Error) and this process does not keep yet:
                    # re-attaching to a replica another process is still launching would count it lost.
                    # Later changes reach a kept deployment through its own events (``on_event``).
                    if self.apps is not None and record.status in ("Ready", "Error") and \
                            record.name not in self._applied:
                        await self._apply(self.apps, record)
            except Exception:
                logger.exception("taking over the deployments another process changed failed")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in [self._consumer, self._adopting, *self._tasks]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


_TEMPLATE_FIELDS = ("image", "port", "command", "template_version", "health_path", "cpu_request", "cpu_limit",
                    "memory_request", "memory_limit", "network")


def _replica(r: ReplicaStatus) -> ReplicaRecord:
    return ReplicaRecord(r.replica, r.revision, r.ready, r.restarts,
                         stamp(r.started) if r.started is not None else None, r.last_error)


def _blank(*, image: str, port: int, command: Sequence[str] | None) -> DeploymentRecord:
    return DeploymentRecord(
        name="", user_id="", template=None, template_version=None, image=image, port=port,
        command=tuple(command) if command is not None else None, health_path="/", cpu_request="100m",
        cpu_limit="500m", memory_request="128Mi", memory_limit="512Mi", replicas=1, visibility="public",
        revision=1, status="Pending", ready_replicas=0, last_error=None, created_at="", updated_at="",
    )


def _merge(env: Sequence[EnvVar], given: dict[str, str]) -> tuple[EnvVar, ...]:
    """``env`` with ``given`` set over it (a value a user gives is not secret, unless it replaces one)."""
    merged = {e.name: e for e in env}
    for name, value in given.items():
        merged[name] = EnvVar(name, value, merged[name].secret if name in merged else False)
    return tuple(merged.values())
