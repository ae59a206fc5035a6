"""The gateway's own copy of each run's log, at ``runs_dir/<run_id>/log``.

Pods are garbage-collected (``ttlSecondsAfterFinished``, evictions, node loss) and their logs
go with them, so the runtime copies the container log into this file while the run goes on
and reads only from the file. The file only ever grows: a copier that has to reconnect skips
the bytes it already has, because a container's log read from its start is append-only.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mcp_server.runtime.base import decode_tail


def read_tail(path: Path, tail: int) -> str:
    """The last ``tail`` bytes of ``path`` as text ("" when missing)."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - tail))
            return decode_tail(handle.read(), cut=True)
    except FileNotFoundError:
        return ""


class RunLog:
    """One run's log file, appended to by its copier until ``done``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done = False

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    async def append(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as handle:
            handle.write(data)

    async def finish(self) -> None:
        self.done = True

    def remove(self) -> None:
        shutil.rmtree(self.path.parent, ignore_errors=True)
