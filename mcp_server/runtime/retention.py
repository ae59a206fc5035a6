"""Removal of finished runs' files once ``KUBEGATE_RUN_RETENTION`` has passed; the rows stay.

Each finished run gets one timer (``call_later``) set to its end plus the retention; at start the
runtime that recovers sweeps the runs dir once, removing what is due and timing the rest. No
polling: a gateway that never finishes a run never wakes for this.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Set
from datetime import datetime
from pathlib import Path

from mcp_server.runtime import shim

logger = logging.getLogger(__name__)

Remover = Callable[[str], Awaitable[list[str]]]


class Retention:
    def __init__(self, runs_dir: Path, seconds: float, remove: Remover) -> None:
        self._runs_dir = runs_dir
        self._seconds = seconds
        self._remove = remove
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def schedule(self, run_id: str, finished_at: datetime) -> None:
        """Remove ``run_id``'s files ``seconds`` after ``finished_at``."""
        if self._seconds <= 0 or run_id in self._timers:
            return
        delay = max(0.0, finished_at.timestamp() + self._seconds - time.time())
        self._timers[run_id] = asyncio.get_running_loop().call_later(delay, self._due, run_id)

    def sweep(self, active: Set[str]) -> None:
        """Time the removal of every finished run found on disk (those in ``active`` are not finished)."""
        if self._seconds <= 0 or not self._runs_dir.is_dir():
            return
        for entry in self._runs_dir.iterdir():
            if entry.name in active:
                continue
            with contextlib.suppress(OSError):
                finished = (entry / shim.EXIT_FILE).stat().st_mtime
                self.schedule(entry.name, datetime.fromtimestamp(finished).astimezone())

    def forget(self, run_id: str) -> None:
        timer = self._timers.pop(run_id, None)
        if timer is not None:
            timer.cancel()

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in self._tasks:
            task.cancel()

    def _due(self, run_id: str) -> None:
        self._timers.pop(run_id, None)
        task = asyncio.get_running_loop().create_task(self._expire(run_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _expire(self, run_id: str) -> None:
        left = await self._remove(run_id)
        if left:
            logger.warning("retention: could not remove all of run %s: %s", run_id, ", ".join(left[:10]))
