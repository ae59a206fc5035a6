"""The gateway's own copy of each run's log, at ``runs_dir/<run_id>/log``.

Pods are garbage-collected (``ttlSecondsAfterFinished``, evictions, node loss) and their logs
go with them, so the runtime copies the container log into this file while the run goes on
and reads only from the file. The file only ever grows: a copier that has to reconnect skips
the bytes it already has, because a container's log read from its start is append-only.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path


def read_tail(path: Path, tail: int | None) -> str:
    """The last ``tail`` bytes of ``path`` as text ("" when missing)."""
    try:
        with path.open("rb") as handle:
            if tail is not None:
                handle.seek(max(0, os.fstat(handle.fileno()).st_size - tail))
            return handle.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


class RunLog:
    """One run's log file plus a way for followers to wait for more of it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done = False
        self._changed = asyncio.Condition()

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    async def append(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as handle:
            handle.write(data)
        async with self._changed:
            self._changed.notify_all()

    async def finish(self) -> None:
        async with self._changed:
            self.done = True
            self._changed.notify_all()

    def remove(self) -> None:
        shutil.rmtree(self.path.parent, ignore_errors=True)

    async def follow(self, tail: int | None) -> AsyncIterator[str]:
        """The log from ``tail`` bytes before its current end, then everything appended until it is done."""
        offset = max(0, self.size() - tail) if tail is not None else 0
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda: self.done or self.size() > offset)  # noqa: B023
            finished = self.done
            data = b""
            if self.size() > offset:
                with self.path.open("rb") as handle:
                    handle.seek(offset)
                    data = handle.read()
            offset += len(data)
            last = finished and offset >= self.size()
            if text := decoder.decode(data, final=last):
                yield text
            if last:
                return
