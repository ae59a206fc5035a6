"""Who starts a sandbox: the process that acts on its runtime events, and only that one.

Alone (SQLite), or leading the replicas, a gateway starts a sandbox in the create request, as it
always did. A follower replica cannot: only the leader reads the runtime's events, so a sandbox
it started would never be seen ``ready``. It stores the sandbox together with its start
(``SandboxRepository.insert(start=...)``: the spec, env and password included, in one
transaction) and tells the leader (``HandOff.hand_over``). The leader takes each waiting start
when told, when it (re)connects and when it takes over (``adopt``); ``take_start`` deletes the
row, so one leader alone starts it, and the row (with the password) lives no longer than that.

A start that fails on the leader is written to the sandbox (``failed``, ``error``, why), never
lost. One whose sandbox was deleted meanwhile is not made, or is removed once made; one that
expired while no leader was up ends ``terminated``/``timeout`` without starting. A leader killed
between the take and the start leaves a live sandbox with neither a row nor a workload: the next
leader's ``recover`` reports it ``failed``/``lost``, and it never starts twice.

Recovery reads which live sandboxes are started while no start is in flight (``_Gate``): a
sandbox being started as the list is read would otherwise look lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import TYPE_CHECKING

from mcp_server.engine.dispatcher import Dispatcher
from mcp_server.engine.workloads import removed_on_failure
from mcp_server.errors import KubegateError
from mcp_server.ids import parse, stamp, utcnow
from mcp_server.runtime.base import RunSpec, Runtime, Workloads
from mcp_server.store.sandboxes import SandboxRecord, SandboxRepository

if TYPE_CHECKING:
    from mcp_server.engine.replicas import HandOff

log = logging.getLogger(__name__)

VERB = "sandboxes"
"""The notice (on ``kubegate_runs``) that sandbox starts wait for the leader."""


class _Gate:
    """Starts go side by side; a recovery waits until none is in flight and holds new ones back meanwhile."""

    def __init__(self) -> None:
        self._starts = 0
        self._recovering = False
        self._changed = asyncio.Condition()

    @asynccontextmanager
    async def start(self) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: not self._recovering)
            self._starts += 1
        try:
            yield
        finally:
            async with self._changed:
                self._starts -= 1
                self._changed.notify_all()

    @asynccontextmanager
    async def recovery(self) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: not self._recovering and self._starts == 0)
            self._recovering = True
        try:
            yield
        finally:
            async with self._changed:
                self._recovering = False
                self._changed.notify_all()


class Starter:
    def __init__(self, repo: SandboxRepository, runtime: Runtime, workloads: Workloads | None, dispatcher: Dispatcher,
                 port: int) -> None:
        self.repo = repo
        self.runtime = runtime
        self.workloads = workloads
        self.dispatcher = dispatcher
        self.port = port
        self.hand_off: HandOff | None = None
        self._gate = _Gate()

    def join(self, hand_off: HandOff) -> None:
        """This process is one of several replicas: it starts sandboxes only while it leads."""
        self.hand_off = hand_off
        hand_off.take_over(VERB, self.adopt)

    @property
    def leads(self) -> bool:
        return self.hand_off is None or self.hand_off.leading

    async def create(self, workloads: Workloads, record: SandboxRecord, spec: RunSpec, *, max_live: int) -> None:
        """Store ``record`` and start it here, or hand its start to the leader; no row is left if either fails."""
        if self.leads:
            async with self._gate.start():  # stored and started as one, never across a recovery's read
                await self.repo.insert(record, max_live=max_live)
                async with removed_on_failure(lambda: self.repo.delete(record.id)):
                    await workloads.start(spec, port=self.port)
            return
        assert self.hand_off is not None
        await self.repo.insert(record, max_live=max_live, start=spec)
        async with removed_on_failure(lambda: self.repo.delete(record.id)):
            await self.hand_off.hand_over(VERB)

    async def adopt(self) -> None:
        """On the leader: start every sandbox a follower handed over (each once, whoever else tries)."""
        if not self.leads or self.workloads is None:
            return
        try:
            waiting = await self.repo.waiting_starts()
        except Exception:  # the starts stay stored: the next notice, reconnect or takeover takes them
            log.exception("could not read the sandbox starts handed to this leader")
            return
        for spec in waiting:
            async with self._gate.start():  # taken and started as one, never across a recovery's read
                try:
                    if await self.repo.take_start(spec.run_id):
                        await self._start_handed(self.workloads, spec)
                except Exception:  # this one only: the store failed under it; the rest still start
                    log.exception("sandbox %s: its handed-over start failed", spec.run_id)

    async def _start_handed(self, workloads: Workloads, spec: RunSpec) -> None:
        record = await self.repo.by_id(spec.run_id)
        if record is None or not record.live:
            return  # deleted (or ended) before it could start
        left = (parse(record.expires_at) - utcnow()).total_seconds()
        if left <= 0:
            await self._ended(spec.run_id, "terminated", "timeout", "expired before a leader could start it")
            return
        try:
            await workloads.start(replace(spec, timeout_seconds=left), port=self.port)
        except Exception as exc:
            why = exc.message if isinstance(exc, KubegateError) else type(exc).__name__
            log.warning("sandbox %s handed over by a follower could not start: %s", spec.run_id, why)
            await self._ended(spec.run_id, "failed", "error", f"could not start: {why}")
            return
        now = await self.repo.by_id(spec.run_id)
        if now is None or now.reason == "deleted":
            await self.runtime.remove(spec.run_id)  # deleted through a follower while it started

    async def _ended(self, sandbox_id: str, status: str, reason: str, message: str) -> None:
        await self.repo.mark_ended(sandbox_id, status, reason, message, stamp())
        self.dispatcher.changed(sandbox_id)

    @asynccontextmanager
    async def recovering(self) -> AsyncIterator[None]:
        """While the live sandboxes are read and re-attached: no start in flight."""
        async with self._gate.recovery():
            yield
