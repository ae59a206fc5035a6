"""A process-wide signal that some credential was revoked, for calls that outlive a request.

A ``tasks_wait`` may run for minutes on a credential checked once, when it started. Revoking a
key or ending a login session calls ``revoked()``; every wait in flight then checks its own
credential again at once and stops with 401 if it is no longer valid. A revocation made by
another process on the same store (a second replica, ``kubegate keys revoke``) arrives as a
store change (``store.changes``: inotify + ``data_version`` on SQLite, ``NOTIFY`` on
PostgreSQL), which calls ``revoked()`` too. Waits also recheck periodically, as a backstop:
every ``KUBEGATE_REVOCATION_RECHECK_SECONDS`` while the store delivers change events, every
``RECHECK_SECONDS`` where it cannot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import anyio.abc

from mcp_server.errors import Unauthorized
from mcp_server.store.changes import StoreChanges

T = TypeVar("T")
RECHECK_SECONDS = 5.0
StillValid = Callable[[], Awaitable[bool]]


class Revocations:
    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._changes: StoreChanges | None = None
        self._backstop = RECHECK_SECONDS

    def follow(self, changes: StoreChanges, *, backstop_seconds: float) -> None:
        """Wake waiters whenever another process changes the store; recheck every ``backstop_seconds``
        as long as the store delivers such events."""
        changes.listen(self.revoked)
        self._changes, self._backstop = changes, backstop_seconds

    @property
    def recheck_seconds(self) -> float:
        live = self._changes is not None and self._changes.live
        return self._backstop if live else min(self._backstop, RECHECK_SECONDS)

    def revoked(self) -> None:
        """Wake every waiter; later waiters wait for the next revocation."""
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def next(self) -> None:
        await self._event.wait()


REVOCATIONS = Revocations()


async def until_revoked(work: Callable[[], Awaitable[T]], still_valid: StillValid,
                        recheck_seconds: float | None = None) -> T:
    """Run ``work`` while the caller's credential stays valid; 401 as soon as it is not."""
    result: list[T] = []
    recheck = REVOCATIONS.recheck_seconds if recheck_seconds is None else recheck_seconds

    async def watch(group: anyio.abc.TaskGroup) -> None:
        while True:
            with anyio.move_on_after(recheck):
                await REVOCATIONS.next()
            if not await still_valid():
                group.cancel_scope.cancel()
                return

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(watch, group)
            result.append(await work())
            group.cancel_scope.cancel()
    except BaseExceptionGroup as failed:
        if len(failed.exceptions) == 1:  # the call's own error, not wrapped
            raise failed.exceptions[0] from None
        raise
    if result:
        return result[0]
    raise Unauthorized("The credential this call was made with was revoked or its session ended")
