"""Sandboxes: long-lived workloads with a URL, a password, exec, files and a deadline.

The store holds each sandbox; the runtime's ``Workloads`` runs it. Its events move the status:
``ready`` -> ``running``; ``exited`` -> ``terminated`` (``timeout``, ``deleted``) or ``failed``
(``error``: it died; ``lost``: its supervisor vanished; ``unready``: its agent never answered).

Among replicas, the leader alone starts sandboxes and acts on their events (``sandbox_starts``).
Every replica serves the rest from what any of them can reach: the store, and the runtime's
read-only paths (the agent's socket in the shared run dir locally; the Pod, Job and Service in
the cluster). ``extend`` and ``delete`` act on the runtime directly from any replica: both are
idempotent there and start nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta
from typing import cast

from mcp_server.config import Settings
from mcp_server.engine.dispatcher import Dispatcher
from mcp_server.engine.sandbox_starts import Starter
from mcp_server.engine.workloads import public_url, required
from mcp_server.errors import Conflict, NotFound, Unavailable, ValidationFailed
from mcp_server.ids import new_id, parse, stamp, utcnow
from mcp_server.models import durations
from mcp_server.models.sandboxes import SandboxCreate
from mcp_server.models.sizes import SizeName
from mcp_server.runtime.base import (
    ExecRequest,
    ExecResult,
    OutputSink,
    RunEvent,
    RunSpec,
    Runtime,
    Workloads,
    WorkloadStats,
    workloads_of,
)
from mcp_server.store.sandboxes import SandboxRecord, SandboxRepository

DEFAULT_DOMAIN = "sandboxes.localhost"
MAX_EXEC_SECONDS = 600.0
_PROVISIONING_WAIT = 30.0


def user_hash(user_id: str) -> str:
    """The short, stable tag of a user in sandbox host names."""
    return hashlib.sha256(user_id.encode()).hexdigest()[:8]


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class SandboxService:
    def __init__(self, repo: SandboxRepository, runtime: Runtime, dispatcher: Dispatcher, settings: Settings) -> None:
        self.repo = repo
        self.runtime = runtime
        self.workloads = workloads_of(runtime)
        self.dispatcher = dispatcher
        self.settings = settings
        self.domain = settings.sandbox_domain or DEFAULT_DOMAIN
        self.starter = Starter(repo, runtime, self.workloads, dispatcher, settings.sandbox_port)
        dispatcher.route("sandbox_", self.on_event)

    def url(self, record: SandboxRecord) -> str:
        return public_url(self.settings, f"{record.host_label}.{self.domain}")

    def _timeout(self, seconds: int | None) -> int:
        if seconds is None:
            return self.settings.default_sandbox_timeout_seconds
        if seconds > self.settings.max_sandbox_timeout_seconds:
            limit = durations.format(self.settings.max_sandbox_timeout_seconds)
            raise ValidationFailed(f"must be at most {limit} (KUBEGATE_MAX_SANDBOX_TIMEOUT_SECONDS)", field="timeout")
        return seconds

    def _require_workloads(self) -> Workloads:
        return required(self.workloads, self.runtime.name, "sandboxes")

    async def create(self, user_id: str, args: SandboxCreate) -> tuple[SandboxRecord, str]:
        workloads = self._require_workloads()
        timeout = self._timeout(args.timeout)
        password = secrets.token_urlsafe(18)
        now = utcnow()
        record = SandboxRecord(
            id=new_id("sandbox"), user_id=user_id, name=args.name, host_label=f"{args.name}-{user_hash(user_id)}",
            image=args.image, size=args.size, network=args.network, env_keys=tuple(sorted(args.env)),
            password_hash=digest(password), status="provisioning", reason=None, message=None,
            timeout_seconds=timeout, created_at=stamp(now), started_at=None,
            expires_at=stamp(now + timedelta(seconds=timeout)), ended_at=None,
        )
        env = {**args.env, "KUBEGATE_SANDBOX_PASSWORD": password, "KUBEGATE_SANDBOX_URL": self.url(record),
               "KUBEGATE_SANDBOX_PORT": str(self.settings.sandbox_port)}
        await self.starter.create(workloads, record, self._spec(record, env),
                                  max_live=self.settings.max_sandboxes_per_user)
        return record, password

    def _spec(self, record: SandboxRecord, env: dict[str, str] | None = None) -> RunSpec:
        return RunSpec(run_id=record.id, owner=record.user_id, image=record.image, command=["kubegate-agent"],
                       env=env or {}, timeout_seconds=record.timeout_seconds, size=cast(SizeName, record.size),
                       network=record.network, labels={"sandbox": record.id, "workload": "1"})

    async def get(self, user_id: str, sandbox_id: str) -> SandboxRecord:
        record = await self.repo.get(user_id, sandbox_id)
        if record is None:
            raise NotFound("Sandbox not found")
        if record.live and parse(record.expires_at) < utcnow() - timedelta(seconds=2):
            record = await self._reconcile(record)
        return record

    async def _reconcile(self, record: SandboxRecord) -> SandboxRecord:
        """Ask the runtime about a sandbox that should have ended (or whose agent is gone).

        Another process (a ``kubegate stdio`` since closed) may have started it, so this one was
        not told when it ended; ``recover`` re-attaches to it or reports how it ended. A follower
        replica leaves that to the leader, which acts on the sandbox's events.
        """
        if self.workloads is None or not self.starter.leads:
            return record
        await self.runtime.recover([self._spec(record)])
        await self.dispatcher.wait_change(record.id, 2.0)
        return await self.repo.get(record.user_id, record.id) or record

    async def page(self, user_id: str, status: str | None, limit: int,
                   cursor: str | None) -> tuple[list[SandboxRecord], str | None]:
        return await self.repo.page(user_id, status, limit, cursor)

    async def delete(self, user_id: str, sandbox_id: str) -> SandboxRecord:
        """Ended first, then removed: a start the leader has yet to make is never made (``Starter``)."""
        record = await self.get(user_id, sandbox_id)
        if record.live:
            await self.repo.mark_ended(sandbox_id, "terminated", "deleted", None, stamp())
        if self.workloads is not None:
            await self.runtime.remove(sandbox_id)
        await self.repo.delete(sandbox_id)
        self.dispatcher.changed(sandbox_id)
        if record.live:
            return _ended(record, "terminated", "deleted")
        return record

    async def running(self, user_id: str, sandbox_id: str) -> SandboxRecord:
        """The sandbox once it runs (waiting out a short ``provisioning``); 409 if it has ended."""
        deadline = utcnow() + timedelta(seconds=_PROVISIONING_WAIT)
        while (record := await self.get(user_id, sandbox_id)).status == "provisioning" and utcnow() < deadline:
            await self.dispatcher.wait_change(sandbox_id, (deadline - utcnow()).total_seconds())
        if record.status != "running":
            raise Conflict(f"Sandbox is {record.status}" + (f" ({record.reason})" if record.reason else "")
                           + "; only a running sandbox can do this")
        return record

    async def exec(self, user_id: str, sandbox_id: str, request: ExecRequest,
                   sink: OutputSink | None = None) -> ExecResult:
        if request.timeout_seconds > MAX_EXEC_SECONDS:
            raise ValidationFailed("must be at most 10m", field="timeout")
        record = await self.running(user_id, sandbox_id)
        async with self._agent(record) as workloads:
            return await workloads.exec(record.id, request, sink)

    async def read_file(self, user_id: str, sandbox_id: str, path: str) -> bytes:
        record = await self.running(user_id, sandbox_id)
        async with self._agent(record) as workloads:
            return await workloads.read_file(record.id, path, limit=self.settings.sandbox_max_file_bytes)

    async def write_file(self, user_id: str, sandbox_id: str, path: str, data: bytes) -> None:
        if len(data) > self.settings.sandbox_max_file_bytes:
            raise ValidationFailed(f"is larger than {self.settings.sandbox_max_file_bytes} bytes", field="content")
        record = await self.running(user_id, sandbox_id)
        async with self._agent(record) as workloads:
            await workloads.write_file(record.id, path, data)

    @asynccontextmanager
    async def _agent(self, record: SandboxRecord) -> AsyncIterator[Workloads]:
        """The workloads, for one call to ``record``'s agent; an agent that is gone ends the sandbox."""
        try:
            yield self._require_workloads()
        except Unavailable:
            await self._reconcile(record)
            raise

    async def extend(self, user_id: str, sandbox_id: str, timeout: int) -> SandboxRecord:
        seconds = self._timeout(timeout)
        record = await self.running(user_id, sandbox_id)
        expires = utcnow() + timedelta(seconds=seconds)
        await self._require_workloads().extend(record.id, expires)
        await self.repo.set_expiry(record.id, stamp(expires))
        return await self.get(user_id, sandbox_id)

    async def stats(self, record: SandboxRecord) -> WorkloadStats | None:
        """What a running sandbox uses now; None when it is not running or does not answer."""
        if record.status != "running" or self.workloads is None:
            return None
        try:
            return await self.workloads.stats(record.id)
        except (Unavailable, NotFound, Conflict, OSError, ValueError):  # it just ended: its Pod or process is gone
            return None

    async def by_host(self, host_label: str) -> SandboxRecord | None:
        return await self.repo.live_by_host(host_label)

    def password_matches(self, record: SandboxRecord, password: str) -> bool:
        return hmac.compare_digest(digest(password), record.password_hash)

    async def on_event(self, event: RunEvent) -> None:
        at = stamp(event.at)
        if event.kind == "ready":
            await self.repo.mark_running(event.run_id, at)
        elif event.kind == "exited":
            record = await self.repo.by_id(event.run_id)
            provisioning = record is not None and record.status == "provisioning"
            if event.reason == "timeout":
                status, reason = "terminated", "timeout"
            elif event.reason == "cancelled":
                status, reason = ("failed", "unready") if provisioning else ("terminated", "deleted")
            else:
                status, reason = "failed", event.reason or "error"
            await self.repo.mark_ended(event.run_id, status, reason, event.message, at)
        self.dispatcher.changed(event.run_id)

    async def recover(self) -> None:
        """After a restart or a takeover: re-attach to the live sandboxes, or learn how they ended; then
        start those handed over by followers."""
        if self.workloads is not None:
            async with self.starter.recovering():
                await self.runtime.recover([self._spec(r) for r in await self.repo.live_started()])
            await self.starter.adopt()


def _ended(record: SandboxRecord, status: str, reason: str) -> SandboxRecord:
    return replace(record, status=status, reason=reason, ended_at=stamp())
