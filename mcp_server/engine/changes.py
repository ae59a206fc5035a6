"""A fan-out of "object X changed" to whoever listens: the dashboard's event streams.

The dispatcher publishes every id it wakes waiters for (a task, a workflow, and later a
sandbox or a deployment), so a listener hears of each status change as it is recorded, with no
polling. The feed knows nothing of owners: a listener fetches the object as its own user and a
stranger's id answers 404 (``events.py``). Deletes, after which there is nothing left to fetch,
are published with the owner's id so that only the owner's listeners hear of them.

Changes to one id coalesce while a listener is busy, and a listener that falls more than
``capacity`` distinct ids behind is told to resynchronise instead of buffering without bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Change:
    object_id: str
    removed_for: str | None = None
    """The owner's user id when the object was deleted; ``None`` for any other change."""


class Listener:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._pending: dict[str, Change] = {}
        self._overflowed = False
        self._ready = asyncio.Event()

    def push(self, change: Change) -> None:
        if change.object_id not in self._pending and len(self._pending) >= self.capacity:
            self._pending.clear()
            self._overflowed = True
        elif not self._overflowed:
            previous = self._pending.pop(change.object_id, None)
            self._pending[change.object_id] = change if change.removed_for or previous is None else previous
        self._ready.set()

    async def next(self, timeout: float) -> list[Change] | None:
        """The changes since the last call (``[]`` after ``timeout`` seconds of quiet); ``None`` after an overflow."""
        try:
            async with asyncio.timeout(timeout):
                await self._ready.wait()
        except TimeoutError:
            return []
        self._ready.clear()
        if self._overflowed:
            self._overflowed = False
            return None
        batch = list(self._pending.values())
        self._pending.clear()
        return batch


class ChangeFeed:
    def __init__(self, capacity: int = 512) -> None:
        self.capacity = capacity
        self._listeners: set[Listener] = set()
        self.relay: Callable[[Change], None] | None = None
        """Passes each change made here on to the other replicas (``engine.replicas``); None on one host."""

    def publish(self, object_id: str, removed_for: str | None = None, *, relayed: bool = False) -> None:
        """Tell this replica's listeners; and the other replicas', unless it came from one (``relayed``)."""
        if self.relay is not None and not relayed:
            self.relay(Change(object_id, removed_for))
        if self._listeners:
            change = Change(object_id, removed_for)
            for listener in self._listeners:
                listener.push(change)

    @contextmanager
    def listen(self) -> Iterator[Listener]:
        listener = Listener(self.capacity)
        self._listeners.add(listener)
        try:
            yield listener
        finally:
            self._listeners.discard(listener)
