"""The long-lived parts of one process, as the composition root (``app.open_services``) built them.

``start_engine`` starts the runtime's event dispatcher and, in the process holding the data
dir's recovery lease, lets the runtime account for every run the store still believes active
(``recover``), so a restarted gateway picks up where the previous one stopped. Commands that
only touch the store (``keys create``) never start it.

A process that did not get the lease waits for it (a thread blocked in ``flock``, no polling):
when the holder ends (a lone ``kubegate stdio`` that started before the gateway, say), the lease
passes on and the new holder recovers as if it had just started: it follows the runs the old
holder left, drives its workflows on, and keeps the deployments, so nothing is left unkept.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from mcp_server.auth.keys import KeyStore
from mcp_server.auth.principal import ALL_SCOPES, Principal
from mcp_server.auth.sessions import SessionStore
from mcp_server.config import Settings
from mcp_server.context import Parts
from mcp_server.engine.dispatcher import Dispatcher
from mcp_server.engine.queue import FairShare
from mcp_server.errors import Unauthorized
from mcp_server.runtime.base import Runtime
from mcp_server.store.stores import Stores

if TYPE_CHECKING:
    from mcp_server.engine.replicas import Elect, Replica

log = logging.getLogger(__name__)


def _take_recovery_lease(data_dir: Path) -> TextIO | None:
    """An exclusive lock on ``engine.lock`` in the data dir, held for the process's life, or None.

    Only its holder recovers runs and resumes workflows at start. Another gateway or a
    ``kubegate stdio`` on the same data dir runs and watches only what it starts itself, so it
    can never report a run that a live process is just starting as lost, nor take over a
    workflow another process is driving. The kernel releases the lock when its holder dies, so
    the next process to start after a crash recovers, or one already running that waits for it
    (``Services._await_lease``). Either way a run another live process is starting at that very
    instant (its row stored, its supervisor not yet up) would be reported lost: the window is the
    few milliseconds between the two.
    """
    handle = (data_dir / "engine.lock").open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


@dataclass(slots=True)
class Services:
    settings: Settings
    stores: Stores
    runtime: Runtime
    dispatcher: Dispatcher
    sessions: SessionStore
    parts: Parts
    engine_running: bool = False
    _lease: TextIO | None = field(default=None)
    replica: Replica | None = None
    """This process among replicas sharing a PostgreSQL store; None on SQLite."""
    elect: Elect | None = None
    """How this replica becomes the engine's leader (``app.leadership``); None on SQLite."""
    _awaited_lease: TextIO | None = None
    """The lock file a thread waits on for the recovery lease, in a process that did not get it at start;
    closed with the process, which ends the wait's hold on it (a lock is released with its last descriptor)."""
    _recovering: asyncio.Task[None] | None = None
    """The recovery begun when the lease passed to this process while it ran."""

    @property
    def keys(self) -> KeyStore:
        return self.parts.keys

    async def start_engine(self) -> None:
        self.dispatcher.start()
        self.parts.deployments.start()
        if self.elect is not None:  # replicas on one store: the elected leader recovers, when elected
            from mcp_server.engine.replicas import HandOff, Replica

            assert isinstance(self.runtime, HandOff)
            self.parts.sandboxes.starter.join(self.runtime)
            self.replica = Replica(self.elect, self.runtime, self.dispatcher, on_lead=self._recover)
            self.replica.start()
        else:
            self._lease = _take_recovery_lease(self.settings.data_dir)
            if self._lease is not None:
                await self._recover()
            else:
                self._await_lease()
        self.engine_running = True

    def _await_lease(self) -> None:
        loop = asyncio.get_running_loop()
        handle = self._awaited_lease = (self.settings.data_dir / "engine.lock").open("a")

        def wait() -> None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX)
                loop.call_soon_threadsafe(self._lease_passed, handle)
            except (OSError, ValueError, RuntimeError):  # closed meanwhile: whoever comes next takes the lease
                handle.close()

        threading.Thread(target=wait, name="kubegate-lease", daemon=True).start()

    def _lease_passed(self, handle: TextIO) -> None:
        if not self.engine_running:
            handle.close()
            return
        self._lease, self._awaited_lease = handle, None
        self._recovering = asyncio.get_running_loop().create_task(self._recover_logged(), name="kubegate-recover")

    async def _recover_logged(self) -> None:
        try:
            await self._recover()
        except Exception:
            log.exception("recovering after the recovery lease passed to this process failed")

    async def _recover(self) -> None:
        """Account for every run the store believes active, then resume what was left mid-way."""
        tasks, workflows = self.parts.tasks, self.parts.workflows
        await self.runtime.recover([*await tasks.active_specs(), *await workflows.active_specs()])
        await self.parts.sandboxes.recover()
        await self.parts.deployments.keep(self.stores.changes)  # the one keeper of every deployment
        await workflows.resume()

    def containment(self) -> dict[str, Any]:
        """The runtime, the isolation and limits in force and the fair-share caps (``/healthz``)."""
        if isinstance(self.runtime, FairShare):
            return self.runtime.describe()
        return {"runtime": self.runtime.name}

    @property
    def recovers(self) -> bool:
        """Whether this process leads: holds the data dir's recovery lease, or leads the replicas."""
        return self._lease is not None or (self.replica is not None and self.replica.leading)

    async def close(self) -> None:
        if self.replica is not None:
            await self.replica.close()
        if self._recovering is not None:
            self._recovering.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._recovering
        if self.engine_running:
            await self.dispatcher.stop()
            await self.parts.deployments.stop()
            await self.runtime.close()
        self.engine_running = False
        for lease in (self._lease, self._awaited_lease):
            if lease is not None:
                lease.close()
        await self.stores.close()

    async def operator(self) -> Principal:
        """The local operator: who ``kubegate stdio`` and ``keys create`` act as by default."""
        user = await self.stores.users.ensure(self.settings.operator_email)
        return Principal(user_id=user.id, email=user.email, method="local", scopes=ALL_SCOPES)

    async def stdio_principal(self) -> Principal:
        """``KUBEGATE_API_KEY``'s user when set (and valid now), else the local operator.

        ``kubegate stdio`` asks on every request, as the HTTP doors do, so a key revoked or expired
        mid-session stops working at once.
        """
        if self.settings.api_key is None:
            return await self.operator()
        principal = await self.keys.authenticate(self.settings.api_key)
        if principal is None:
            raise Unauthorized("KUBEGATE_API_KEY is invalid, expired or revoked")
        return principal
