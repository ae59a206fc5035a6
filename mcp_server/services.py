"""The long-lived parts every handler may use, opened once per process.

``open(..., engine=True)`` also starts the runtime and the event dispatcher, then lets the
runtime account for every run the store still believes active (``recover``), so a restarted
gateway picks up where the previous one stopped. Commands that only touch the store (``keys
create``) open without the engine.
"""

from __future__ import annotations

import fcntl
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from mcp_server.auth.keys import KeyStore
from mcp_server.auth.principal import ALL_SCOPES, Principal
from mcp_server.config import Settings
from mcp_server.engine.dispatcher import Dispatcher
from mcp_server.engine.tasks import TaskService
from mcp_server.engine.templates import apply_templates, read_templates_file
from mcp_server.engine.workflows import WorkflowService
from mcp_server.errors import Unauthorized, Unavailable
from mcp_server.runtime.base import Runtime
from mcp_server.store.db import Database
from mcp_server.store.templates import TemplateStore
from mcp_server.store.users import ensure_user


def _take_recovery_lease(data_dir: Path) -> TextIO | None:
    """An exclusive lock on ``engine.lock`` in the data dir, held for the process's life, or None.

    Only its holder recovers runs and resumes workflows at start. Another gateway or a
    ``kubegate stdio`` on the same data dir runs and watches only what it starts itself, so it
    can never report a run that a live process is just starting as lost, nor take over a
    workflow another process is driving. The kernel releases the lock when its holder dies, so
    the next process to start after a crash recovers.
    """
    handle = (data_dir / "engine.lock").open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def make_runtime(settings: Settings) -> Runtime:
    if settings.runtime == "kubernetes":
        try:
            from k8s.runtime import KubernetesRuntime
        except ImportError as exc:
            raise Unavailable(f"KUBEGATE_RUNTIME=kubernetes needs pip install 'kubegate[kubernetes]' ({exc})") from exc
        return KubernetesRuntime(settings)
    from mcp_server.runtime.local import LocalRuntime

    return LocalRuntime(settings)


@dataclass(slots=True)
class Services:
    settings: Settings
    db: Database
    keys: KeyStore
    runtime: Runtime
    dispatcher: Dispatcher
    tasks: TaskService
    workflows: WorkflowService
    engine_running: bool = False
    _lease: TextIO | None = None

    @classmethod
    async def open(cls, settings: Settings, *, engine: bool = True) -> Services:
        templates = read_templates_file(settings.templates_file) if settings.templates_file else []
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        db = await Database.open(settings.db_path)
        await apply_templates(TemplateStore(db), templates)
        runtime = make_runtime(settings)
        dispatcher = Dispatcher(runtime)
        services = cls(
            settings=settings, db=db, keys=KeyStore(db, settings.key_touch_interval_seconds), runtime=runtime,
            dispatcher=dispatcher, tasks=TaskService(db, runtime, dispatcher, settings),
            workflows=WorkflowService(db, runtime, dispatcher, settings),
        )
        if engine:
            await services.start_engine()
        return services

    async def start_engine(self) -> None:
        self.dispatcher.start()
        self._lease = _take_recovery_lease(self.settings.data_dir)
        if self._lease is not None:
            await self.runtime.recover([*await self.tasks.active_specs(), *await self.workflows.active_specs()])
            await self.workflows.resume()
        self.engine_running = True

    @property
    def recovers(self) -> bool:
        """Whether this process holds the data dir's recovery lease (see ``_take_recovery_lease``)."""
        return self._lease is not None

    async def close(self) -> None:
        if self.engine_running:
            await self.dispatcher.stop()
            await self.runtime.close()
        if self._lease is not None:
            self._lease.close()
        await self.db.close()

    async def operator(self) -> Principal:
        """The local operator: who ``kubegate stdio`` and ``keys create`` act as by default."""
        user = await ensure_user(self.db, self.settings.operator_email)
        return Principal(user_id=user.id, email=user.email, method="local", scopes=ALL_SCOPES)

    async def stdio_principal(self) -> Principal:
        """``KUBEGATE_API_KEY``'s user when set (and valid), else the local operator."""
        if self.settings.api_key is None:
            return await self.operator()
        principal = await self.keys.authenticate(self.settings.api_key)
        if principal is None:
            raise Unauthorized("KUBEGATE_API_KEY is invalid, expired or revoked")
        return principal
