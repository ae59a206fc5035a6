"""Deployments: a user's long-running apps, from a template or a raw image, kept by the runtime's ``Apps``.

The store holds what each deployment should be (its spec, pinned template version, env) and the
last status the runtime reported; the runtime converges on the spec (``Apps.apply``) and reports
every change as an event, which this service writes down (no polling). Deleting marks the row
``Deleting``; it goes once the runtime says the app is gone.

Exactly one process keeps every deployment (applies, recovers, restarts, follows its events): the
one that recovers the engine (``keep``): the leader among replicas, and on one machine the holder
of the data dir's recovery lease. Any other process that creates, scales, updates or deletes one
only writes the row, and the repository announces the commit (``NOTIFY`` on PostgreSQL; SQLite's
own change signal); the keeper re-reads what changed and applies it (``_sync``). A keeper that
dies leaves the apps running under their supervisors; the next one recovers every row, those
still ``Pending`` or ``Provisioning`` included (the runtime re-attaches to what runs and starts
what is missing). Every process serves reads: the row, and the runtime's read-only path
(``Apps.endpoints``/``read_logs``/``metrics`` by ``AppRef``).
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
from mcp_server.errors import BadRequest, Conflict, KubegateError, NotFound, ValidationFailed
from mcp_server.ids import stamp, utcnow
from mcp_server.models.deployments import DeploymentCreate, DeploymentUpdate
from mcp_server.runtime.apps import (
    AppEvent,
    AppMetrics,
    AppRef,
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
        self.keeping = False
        """Whether this process keeps the deployments (``keep``); otherwise it writes rows and reads."""
        self._applied: dict[str, tuple[int, int]] = {}
        self._removing: set[str] = set()
        self._consumer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._syncing: asyncio.Task[None] | None = None
        self._stale = False
        self._pass = asyncio.Lock()

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
        if self.keeping:  # otherwise the keeper heard of the row and applies it
            async with removed_on_failure(lambda: self.repo.delete(record.name)):
                await self._apply_latest(apps, record.name)
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

    async def _apply_latest(self, apps: Apps, name: str) -> None:
        """Apply the row as it is now, one apply at a time: a newer change made elsewhere meanwhile wins."""
        async with self._pass:
            record = await self.repo.by_name(name)
            if record is not None and record.status != "Deleting" and \
                    self._applied.get(name) != (record.revision, record.replicas):
                await self._apply(apps, record)

    async def get(self, user_id: str, name: str) -> DeploymentRecord:
        record = await self.repo.get(user_id, name)
        if record is None:
            raise NotFound(f"Deployment '{name}' not found; deployments_list shows yours")
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
        apps = self._require_apps()
        if not await self.repo.scale(name, replicas, stamp()):
            raise Conflict(f"Deployment '{name}' is being deleted")
        if self.keeping:
            await self._apply_latest(apps, name)
        return replace(record, replicas=replicas)

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
        return await self._change(record, replace(record, revision=record.revision + 1, updated_at=stamp()))

    async def _change(self, before: DeploymentRecord, after: DeploymentRecord) -> DeploymentRecord:
        """Store ``after``'s spec unless another update came first (then 409); the keeper applies it."""
        apps = self._require_apps()
        if not await self.repo.replace(after, revision=before.revision):
            raise Conflict(f"Deployment '{after.name}' changed or is being deleted meanwhile; "
                           "deployments_get shows it now, then try again")
        if self.keeping:
            await self._apply_latest(apps, after.name)
        return after

    async def delete(self, user_id: str, name: str) -> DeploymentRecord:
        record = await self.get(user_id, name)
        await self.repo.mark_deleting(name, stamp())
        if self.keeping or self.apps is None:
            self._start_removing(name)
        return replace(record, status="Deleting")

    def _start_removing(self, name: str) -> None:
        if name not in self._removing:
            self._removing.add(name)
            self._applied.pop(name, None)  # from now on its events are not this process's business
            self._spawn(self._remove(name))

    async def _remove(self, name: str) -> None:
        try:
            if self.apps is not None:
                await self.apps.delete(name)  # its event removes the row
            else:
                await self.repo.delete(name)
                self.dispatcher.changed(name)
        finally:
            self._removing.discard(name)

    async def logs(self, user_id: str, name: str, *, tail: int, since: int | None,
                   replica: str | None) -> Sequence[LogLine]:
        record = await self.get(user_id, name)
        after = utcnow() - timedelta(seconds=since) if since is not None else None
        return await self._require_apps().read_logs(_ref(record), tail=tail, since=after, replica=replica)

    async def metrics(self, user_id: str, name: str) -> AppMetrics:
        record = await self.get(user_id, name)
        return await self._require_apps().metrics(_ref(record))

    async def by_host(self, label: str) -> DeploymentRecord | None:
        return await self.repo.by_name(label, env=False)

    async def endpoints(self, record: DeploymentRecord) -> Sequence[Endpoint]:
        return await self.apps.endpoints(_ref(record)) if self.apps is not None else []

    async def on_event(self, event: AppEvent) -> None:
        """Write down what the runtime reports (only the keeper: another process's runtime may watch too)."""
        if not self.keeping:
            return
        if event.status is None:
            await self.repo.delete(event.name)
        else:
            record = await self.repo.by_name(event.name, env=False)
            if record is None or record.status == "Deleting":  # deleted through another process
                if event.name in self._applied:
                    self._start_removing(event.name)
                return
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

    async def keep(self, changes: StoreChanges) -> None:
        """Become the keeper: recover every deployment, then apply what other processes commit, as they do."""
        if self.apps is None or self.keeping:
            return
        self.keeping = True
        changes.listen(self._store_changed)  # first: a row written while recovering makes one more pass
        async with self._pass:
            records = await self.repo.all()
            live = [r for r in records if r.status != "Deleting"]
            await self.apps.recover([self.spec(r) for r in live])
            self._applied.update({r.name: (r.revision, r.replicas) for r in live})
            for record in records:
                if record.status == "Deleting":
                    self._start_removing(record.name)

    def _store_changed(self) -> None:
        self._stale = True  # a change during a pass makes one more pass, never a second task
        if self._syncing is None or self._syncing.done():
            self._syncing = asyncio.get_running_loop().create_task(self._sync_all(), name="kubegate-apps-sync")

    async def _sync_all(self) -> None:
        while self._stale:
            self._stale = False
            try:
                async with self._pass:
                    await self._sync()
            except Exception:
                logger.exception("applying the deployments another process changed failed")

    async def _sync(self) -> None:
        """Apply each row another process created or changed since this keeper last applied it; remove deleted ones."""
        assert self.apps is not None
        for name, revision, replicas, status in await self.repo.versions():
            if status == "Deleting":
                self._start_removing(name)
            elif self._applied.get(name) != (revision, replicas) and name not in self._removing:
                record = await self.repo.by_name(name)
                if record is not None and record.status != "Deleting":
                    await self._apply_or_record(self.apps, record)

    async def _apply_or_record(self, apps: Apps, record: DeploymentRecord) -> None:
        """Apply a row written elsewhere; the runtime's refusal becomes its ``Error`` (its maker is not waiting)."""
        try:
            await self._apply(apps, record)
        except KubegateError as exc:
            self._applied[record.name] = (record.revision, record.replicas)  # not again until it changes
            await self.repo.set_status(record.name, "Error", 0, f"the runtime refused it: {exc.message}", stamp())
            self.dispatcher.changed(record.name)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in [self._consumer, self._syncing, *self._tasks]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


_TEMPLATE_FIELDS = ("image", "port", "command", "template_version", "health_path", "cpu_request", "cpu_limit",
                    "memory_request", "memory_limit", "network")


def _ref(record: DeploymentRecord) -> AppRef:
    """The deployment as its keeper last recorded it, for the runtime's read-only path."""
    return AppRef(record.name, record.user_id, [ReplicaStatus(r.replica, r.ready, r.restarts, r.last_error,
                                                              revision=r.revision) for r in record.replica_status])


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
