"""Notice, through inotify, when a run that another process started on this data dir ends.

``kubegate stdio`` (or a second gateway) shares the data dir with the gateway that holds the
recovery lease. Its runs outlive it: a short stdio session ends long before its task does. The
lease holder watches the runs dir; for each new run dir it watches for ``exit.json`` (which the
shim renames into place as its last act) and hands the run id to ``on_exit`` at once, so the
run's end is recorded then, not at the gateway's next restart. Runs the holder started itself
are ignored by ``on_exit``.

Where inotify cannot be had, nothing is watched and such runs are picked up at the next start.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import struct
from collections.abc import Callable
from pathlib import Path

from mcp_server.runtime.shim import EXIT_FILE

log = logging.getLogger(__name__)
_IN_CREATE = 0x100
_IN_MOVED_TO = 0x80
_IN_ISDIR = 0x40000000
_IN_IGNORED = 0x8000
_EVENT = struct.Struct("iIII")


class RunsFollower:
    def __init__(self, runs_dir: Path, on_exit: Callable[[str], None]) -> None:
        self.runs_dir = runs_dir
        self.on_exit = on_exit
        self._libc: ctypes.CDLL | None = None
        self._fd: int | None = None
        self._root = -1
        self._runs: dict[int, str] = {}

    def start(self) -> bool:
        """Begin watching; False when inotify is not available here."""
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = int(libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC))
        except (OSError, AttributeError):
            return False
        if fd < 0:
            return False
        self._libc, self._fd = libc, fd
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self._root = int(libc.inotify_add_watch(fd, os.fsencode(self.runs_dir), _IN_CREATE | _IN_MOVED_TO))
        if self._root < 0:
            self.close()
            return False
        asyncio.get_running_loop().add_reader(fd, self._on_readable)
        return True

    def close(self) -> None:
        if self._fd is not None:
            try:
                asyncio.get_running_loop().remove_reader(self._fd)
            except RuntimeError:
                pass  # no loop any more: nothing to unregister from
            os.close(self._fd)
            self._fd = None
        self._runs.clear()

    def _watch_run(self, run_id: str) -> None:
        assert self._libc is not None and self._fd is not None
        wd = int(self._libc.inotify_add_watch(self._fd, os.fsencode(self.runs_dir / run_id), _IN_MOVED_TO))
        if wd < 0:
            log.warning("cannot watch run %s: it is followed from the next start", run_id)
            return
        self._runs[wd] = run_id
        if (self.runs_dir / run_id / EXIT_FILE).exists():  # it ended before the watch was in place
            self._ended(wd)

    def _ended(self, wd: int) -> None:
        run_id = self._runs.pop(wd, None)
        if run_id is None:
            return
        if self._fd is not None and self._libc is not None:
            self._libc.inotify_rm_watch(self._fd, wd)
        self.on_exit(run_id)

    def _on_readable(self) -> None:
        if self._fd is None:
            return
        try:
            data = os.read(self._fd, 64 * 1024)
        except BlockingIOError:
            return
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            name = data[offset + _EVENT.size:offset + _EVENT.size + length].rstrip(b"\0").decode(errors="replace")
            offset += _EVENT.size + length
            if wd == self._root and mask & _IN_ISDIR and name:
                self._watch_run(name)
            elif mask & _IN_IGNORED:
                self._runs.pop(wd, None)  # the run dir was removed
            elif name == EXIT_FILE:
                self._ended(wd)
