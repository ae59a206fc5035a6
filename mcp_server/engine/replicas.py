"""Several gateway replicas on one store: one leads the engine, every one serves every request.

The leader alone recovers runs, resumes workflows, starts runs and acts on the runtime's events.
A follower stores what it is asked to do exactly as the leader would (tasks, workflows, claimed
steps) and hands each run to the leader through the stored fair-share queue, then says so with a
notice (``kubegate_runs``): the leader adopts what is queued when told, and again whenever it
(re)connects or takes over, so a notice lost in a reconnect delays nothing for long and a run
handed over is never lost. Cancels and removals reach the leader the same way. Other kinds of
work (sandbox starts) ride on the same notices and catch-ups under a verb of their own (``take_over``).

Every replica relays each change it records (``kubegate_changes``) and applies the others', so
``tasks_wait``, ``workflows_wait`` and the dashboard's event stream answer the same through any
replica. A leader whose lease breaks stops acting at once: it hands no more events to the
engine, starts nothing, and ends its process (``on_lost``), since another replica may already
lead; its runs live on under their supervisors and the new leader re-attaches to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Protocol

from mcp_server.config import Settings
from mcp_server.engine.changes import Change
from mcp_server.engine.dispatcher import Dispatcher
from mcp_server.engine.queue import FairShare
from mcp_server.runtime.base import RunEvent, RunSpec, Runtime
from mcp_server.store.coordination import Channel
from mcp_server.store.run_queue import RunQueue

log = logging.getLogger(__name__)

RUNS, CHANGES = "kubegate_runs", "kubegate_changes"


class Held(Protocol):
    """Leadership while held: the PostgreSQL lock (``store.coordination``) or a Kubernetes Lease (``k8s.lease``)."""

    lost: asyncio.Event

    async def release(self) -> None: ...


Elect = Callable[[], Awaitable[Held]]
"""Waits until this replica leads; what the composition root picks for the runtime in use."""


class HandOff(FairShare):
    """The fair-share runtime of a replica: its own while leading, the leader's (via the store) while not."""

    def __init__(self, inner: Runtime, queue: RunQueue, settings: Settings, channel: Channel) -> None:
        super().__init__(inner, queue, settings)
        self.channel = channel
        self.leading = False
        self._lead = asyncio.Event()
        self._adopting = asyncio.Lock()
        self._others: dict[str, Callable[[], Awaitable[None]]] = {}

    def take_over(self, verb: str, adopt: Callable[[], Awaitable[None]]) -> None:
        """On the leader, ``adopt`` takes what was handed over as ``verb``: on its notice, (re)connect and takeover."""
        self._others[verb] = adopt

    async def hand_over(self, verb: str) -> None:
        """Tell the leader that work of ``verb`` waits in the store for it."""
        await self.channel.send(RUNS, verb)

    def lead(self) -> None:
        self.leading = True
        self._lead.set()

    def follow(self) -> None:
        self.leading = False

    async def start(self, spec: RunSpec) -> None:
        if self.leading:
            await super().start(spec)
            return
        await self._queue.put(spec)
        await self.channel.send(RUNS, "start")

    async def cancel(self, run_id: str) -> None:
        if self.leading:
            await super().cancel(run_id)
        else:
            await self.channel.send(RUNS, f"cancel {run_id}")

    async def remove(self, run_id: str) -> None:
        if self.leading:
            await super().remove(run_id)
            return
        await self._queue.take(run_id)  # not yet adopted: it never starts
        await self.channel.send(RUNS, f"remove {run_id}")

    async def events(self) -> AsyncIterator[RunEvent]:
        await self._lead.wait()  # a follower acts on no event
        async for event in super().events():
            if not self.leading:
                return
            yield event

    async def recover(self, active: Sequence[RunSpec]) -> None:
        """Keep every handed-over run: one queued after the caller read ``active`` is no orphan to drop.

        (A follower removes a run from the queue before it deletes the run's task or workflow.)
        """
        known = {spec.run_id for spec in active}
        queued = [spec for spec in await self._queue.waiting() if spec.run_id not in known]
        await super().recover([*active, *queued])

    async def adopt(self) -> None:
        """Queue every run a follower handed over that this leader does not hold yet."""
        async with self._adopting, self._pumping:  # never while a run is between dequeue and launch
            for spec in await self._queue.waiting():
                if spec.run_id not in self._waiting and spec.run_id not in self._active:
                    self._waiting[spec.run_id] = spec
        self._kick()
        for adopt in self._others.values():
            await adopt()

    async def on_notice(self, payload: str) -> None:
        if not self.leading:
            return
        verb, _, run_id = payload.partition(" ")
        if verb == "start":
            await self.adopt()
        elif verb == "cancel" and run_id:
            await super().cancel(run_id)
        elif verb == "remove" and run_id:
            await super().remove(run_id)
        elif (adopt := self._others.get(verb)) is not None:
            await adopt()


def stop_process() -> None:
    """What a leader that lost its lease does: end, to start again as a follower (the orchestrator restarts it)."""
    log.critical("leadership lost: stopping this replica")
    os.kill(os.getpid(), signal.SIGTERM)


class Replica:
    """This process's part among the replicas: the leader election, the notices in and out."""

    def __init__(self, elect: Elect, runtime: HandOff, dispatcher: Dispatcher,
                 on_lead: Callable[[], Awaitable[None]], on_lost: Callable[[], None] = stop_process) -> None:
        self.elect = elect
        self.runtime = runtime
        self.dispatcher = dispatcher
        self.on_lead = on_lead
        self.on_lost = on_lost
        self.id = uuid.uuid4().hex[:12]
        self.lease: Held | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._channel = runtime.channel

    @property
    def leading(self) -> bool:
        return self.runtime.leading

    def start(self) -> None:
        self.dispatcher.feed.relay = self._relay
        self._spawn(self._channel.listen(self._received, self._connected), "kubegate-listen")
        self._spawn(self._elect(), "kubegate-elect")

    def _spawn(self, work: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _elect(self) -> None:
        self.lease = await self.elect()
        log.info("replica %s leads the engine", self.id)
        self.runtime.lead()
        try:
            await self.on_lead()
            await self.runtime.adopt()
        except Exception:  # a leader that cannot recover must not sit on the lock
            log.exception("recovery failed on the new leader: stepping down")
        else:
            await self.lease.lost.wait()
        await self._stop_acting()
        self.on_lost()

    async def _stop_acting(self) -> None:
        self.runtime.follow()
        await self.dispatcher.stop()

    async def _connected(self) -> None:
        if self.leading:
            await self.runtime.adopt()  # whatever was handed over while the notices could not reach us

    def _received(self, channel: str, payload: str) -> None:
        if channel == RUNS:
            self._spawn(self.runtime.on_notice(payload), "kubegate-runs-notice")
            return
        origin, _, rest = payload.partition(" ")
        object_id, _, removed_for = rest.partition(" ")
        if origin != self.id and object_id:
            self.dispatcher.changed(object_id, removed_for or None, relayed=True)

    def _relay(self, change: Change) -> None:
        payload = f"{self.id} {change.object_id} {change.removed_for or ''}".rstrip()
        self._spawn(self._send_change(payload), "kubegate-relay")

    async def _send_change(self, payload: str) -> None:
        try:
            await self._channel.send(CHANGES, payload)
        except Exception as exc:  # the change is stored; only other replicas' waiters hear of it later
            log.warning("could not relay a change: %s", type(exc).__name__)

    async def close(self) -> None:
        """Stop acting, then let the lock go: the next leader never overlaps this one."""
        self.dispatcher.feed.relay = None
        await self._stop_acting()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.lease is not None:
            await self.lease.release()
