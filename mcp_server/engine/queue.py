"""Fair shares: caps on active runs per user and per gateway, and on stored objects per user.

``FairShare`` wraps whatever runtime is configured (local or Kubernetes), so the caps hold on
both by construction. A run that finds no slot (``KUBEGATE_MAX_ACTIVE_RUNS_PER_USER`` for its
owner, ``KUBEGATE_MAX_ACTIVE_RUNS`` in all) waits, still ``pending``, in a queue kept in the store
(so a restart loses none), and starts when an ``exited`` event frees a slot: no polling. The queue
is served oldest first, skipping owners at their cap, so one user's backlog never holds back
another user's run. Nothing is ever dropped: a queued run ends only by starting, or by a cancel
or delete, which answer ``exited(cancelled)`` as for any run.

``admit`` runs before anything is stored: it refuses work the runtime cannot run (no usable
bubblewrap, see ``runtime.containment``) and work beyond ``KUBEGATE_MAX_OBJECTS_PER_USER`` (403).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

from mcp_server.config import Settings
from mcp_server.errors import Conflict, Forbidden, Unavailable
from mcp_server.runtime.base import RunEvent, RunSpec, Runtime
from mcp_server.store.run_queue import RunQueue, Stored

log = logging.getLogger(__name__)


class FairShare:
    """A ``Runtime`` that admits runs to the runtime it wraps as fair-share slots allow."""

    def __init__(self, inner: Runtime, queue: RunQueue, settings: Settings) -> None:
        self.inner = inner
        self.name = inner.name
        self._queue = queue
        self._per_user, self._total = settings.max_active_runs_per_user, settings.max_active_runs
        self._max_objects = settings.max_objects_per_user
        self._active: dict[str, str] = {}
        self._owners: Counter[str] = Counter()
        self._waiting: dict[str, RunSpec] = {}
        self._events: asyncio.Queue[RunEvent | None] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._forwarder: asyncio.Task[None] | None = None
        self._pumping = asyncio.Lock()

    def describe(self) -> dict[str, Any]:
        """For ``/healthz``: the runtime, its confinement (if it reports one) and the caps."""
        return {"runtime": self.name, **getattr(self.inner, "containment", {}),
                "maxActiveRuns": self._total, "maxActiveRunsPerUser": self._per_user}

    async def admit(self, user_id: str, kind: Stored) -> None:
        """Refuse new work the runtime cannot run or the user has no room to store."""
        refusal: str | None = getattr(self.inner, "refusal", None)
        if refusal is not None:
            raise Unavailable(refusal)
        if await self._queue.stored_count(kind, user_id) >= self._max_objects:
            raise Forbidden(f"you keep {self._max_objects} {kind} already, the most allowed per user "
                            f"(KUBEGATE_MAX_OBJECTS_PER_USER); delete finished ones to make room")

    async def start(self, spec: RunSpec) -> None:
        if spec.run_id in self._active or spec.run_id in self._waiting:
            raise Conflict(f"run {spec.run_id} already exists")
        if not self._waiting and self._has_slot(spec.owner):
            await self._launch(spec, raise_errors=True)
            return
        self._waiting[spec.run_id] = spec
        await self._queue.put(spec)
        self._kick()

    def _has_slot(self, owner: str) -> bool:
        return len(self._active) < self._total and self._owners[owner] < self._per_user

    async def _launch(self, spec: RunSpec, *, raise_errors: bool = False) -> None:
        self._active[spec.run_id] = spec.owner
        self._owners[spec.owner] += 1
        try:
            await self.inner.start(spec)
        except Exception as exc:
            self._release(spec.run_id)
            if raise_errors:
                raise  # a direct start: the caller records the failure
            log.warning("queued run %s could not start: %s", spec.run_id, exc)
            self._events.put_nowait(RunEvent(spec.run_id, "exited", datetime.now(UTC), reason="error",
                                             message=f"could not start: {exc}"))

    def _release(self, run_id: str) -> None:
        owner = self._active.pop(run_id, None)
        if owner is not None:
            self._owners[owner] -= 1
            if self._owners[owner] <= 0:
                del self._owners[owner]
            self._kick()

    def _kick(self) -> None:
        if self._waiting:
            task = asyncio.get_running_loop().create_task(self._pump())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self) -> None:
        """Start waiting runs, oldest first, while slots allow; owners at their cap are skipped.

        A run leaves the stored queue before it starts, never after: a process that dies between
        the two steps leaves a run the store calls active but that is no longer queued, so the next
        leader re-attaches to it (``recover``) or reports it ``lost``; it never starts it twice.
        """
        async with self._pumping:
            for spec in list(self._waiting.values()):
                if len(self._active) >= self._total:
                    break
                if spec.run_id not in self._waiting or not self._has_slot(spec.owner):
                    continue
                del self._waiting[spec.run_id]
                await self._queue.take(spec.run_id)
                await self._launch(spec)

    async def cancel(self, run_id: str) -> None:
        if await self._drop(run_id):
            self._events.put_nowait(RunEvent(run_id, "exited", datetime.now(UTC), reason="cancelled"))
        else:
            await self.inner.cancel(run_id)

    async def remove(self, run_id: str) -> None:
        if await self._drop(run_id):
            self._events.put_nowait(RunEvent(run_id, "exited", datetime.now(UTC), reason="cancelled"))
        await self.inner.remove(run_id)

    async def _drop(self, run_id: str) -> bool:
        """Take ``run_id`` out of the queue; True if it was waiting there."""
        if self._waiting.pop(run_id, None) is None:
            return False
        await self._queue.take(run_id)
        return True

    def read_logs(self, run_id: str, *, tail: int) -> str:
        return self.inner.read_logs(run_id, tail=tail)

    async def events(self) -> AsyncIterator[RunEvent]:
        if self._forwarder is None:
            self._forwarder = asyncio.create_task(self._forward(), name="kubegate-fair-share")
        while (event := await self._events.get()) is not None:
            yield event
        self._events.put_nowait(None)

    async def _forward(self) -> None:
        async for event in self.inner.events():
            if event.kind == "exited":
                self._release(event.run_id)
            self._events.put_nowait(event)
        self._events.put_nowait(None)

    async def recover(self, active: Sequence[RunSpec]) -> None:
        """Re-queue the runs that were waiting; hand the others to the runtime to re-attach."""
        wanted = {spec.run_id for spec in active}
        queued = set()
        for spec in await self._queue.waiting():
            queued.add(spec.run_id)
            if spec.run_id in wanted:
                self._waiting.setdefault(spec.run_id, spec)
            else:
                await self._queue.take(spec.run_id)  # its task or workflow was deleted meanwhile
        running = [spec for spec in active if spec.run_id not in queued and spec.run_id not in self._active]
        for spec in running:
            self._active[spec.run_id] = spec.owner
            self._owners[spec.owner] += 1
        await self.inner.recover(running)
        self._kick()

    async def close(self) -> None:
        for task in [*self._tasks, *([self._forwarder] if self._forwarder else [])]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.inner.close()
        self._events.put_nowait(None)


async def admit(runtime: Runtime, user_id: str, kind: Stored) -> None:
    """``FairShare.admit`` when the engine's runtime is one (test doubles may be bare runtimes)."""
    if isinstance(runtime, FairShare):
        await runtime.admit(user_id, kind)
