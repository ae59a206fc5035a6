"""The event loop of the engine: one consumer of the runtime's events, routed by run id.

Runs are named after what owns them (``task_...`` for tasks, ``wfrun_...`` for workflow
steps), so the dispatcher hands each event to the owner's handler as soon as it arrives;
there is no polling interval anywhere between a run ending and its owner reacting. Waiters
(``tasks_wait``, ``workflows_wait``) are woken through ``changed``/``wait_change``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from mcp_server.engine.changes import ChangeFeed
from mcp_server.observability import METRICS
from mcp_server.runtime.base import RunEvent, Runtime

log = logging.getLogger(__name__)
EventHandler = Callable[[RunEvent], Awaitable[None]]


def count_run(runtime: str, event: RunEvent) -> None:
    """Runs started, finished (exit 0) and failed, per runtime and kind (``/metrics``)."""
    kind = "task" if event.run_id.startswith("task_") else "workflow_step"
    if event.kind == "started":
        outcome = "started"
    else:
        outcome = "finished" if event.reason == "completed" and event.exit_code == 0 else "failed"
    METRICS.runs.inc(runtime, kind, outcome)


class Dispatcher:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._handlers: dict[str, EventHandler] = {}
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._consumer: asyncio.Task[None] | None = None
        self.feed = ChangeFeed()
        """Every change, for the dashboard's event streams."""

    def route(self, prefix: str, handler: EventHandler) -> None:
        self._handlers[prefix] = handler

    def start(self) -> None:
        self._consumer = asyncio.create_task(self._consume(), name="kubegate-dispatcher")

    async def stop(self) -> None:
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer

    async def _consume(self) -> None:
        runtime = str(getattr(self.runtime, "name", type(self.runtime).__name__))
        async for event in self.runtime.events():
            count_run(runtime, event)
            handler = next((h for p, h in self._handlers.items() if event.run_id.startswith(p)), None)
            if handler is None:
                log.warning("event for unknown run %s dropped", event.run_id)
                continue
            try:
                await handler(event)
            except Exception:
                log.exception("handling %s of %s failed", event.kind, event.run_id)

    def changed(self, object_id: str, removed_for: str | None = None, *, relayed: bool = False) -> None:
        """Wake this replica's waiters on ``object_id`` and publish the change (``relayed``: from another replica)."""
        self.feed.publish(object_id, removed_for, relayed=relayed)
        for waiter in self._waiters.pop(object_id, set()):
            waiter.set()

    async def wait_change(self, object_id: str, timeout: float) -> bool:
        """Wait until ``changed(object_id)`` or ``timeout``; True when something changed."""
        waiter = asyncio.Event()
        self._waiters.setdefault(object_id, set()).add(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter.wait()
            return True
        except TimeoutError:
            return False
        finally:
            waiters = self._waiters.get(object_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    self._waiters.pop(object_id, None)
