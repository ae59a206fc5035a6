"""Wake log followers when a log file grows, through one shared inotify instance.

The stdlib has no inotify, so it is reached through libc with ctypes. One instance serves every
follower of every run (the kernel allows a user only 128 instances, but thousands of watches);
a watch is shared by all followers of the same file and dropped with its last follower.

Where inotify cannot be had (no libc symbol, or the instance or watch limit is reached) a
follower falls back to re-reading every ``FALLBACK_POLL`` seconds: bounded, and only then.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FALLBACK_POLL = 0.25

_IN_MODIFY = 0x2
_IN_IGNORED = 0x8000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")


class LogWatcher:
    """Hands out an ``asyncio.Event`` per follower, set whenever the followed file is written."""

    def __init__(self) -> None:
        self._fd: int | None = None
        self._libc: ctypes.CDLL | None = None
        self._waiters: dict[int, set[asyncio.Event]] = {}
        self._broken = False

    @contextmanager
    def watch(self, path: Path | None) -> Iterator[tuple[asyncio.Event, float | None]]:
        """Yield ``(event, poll)``: wait on ``event``, but no longer than ``poll`` seconds if given.

        With no ``path`` the event is never set by a write: for readers that will not wait.
        """
        event = asyncio.Event()
        if path is None:
            yield event, None
            return
        wd = self._add(path)
        if wd is None:
            yield event, FALLBACK_POLL
            return
        self._waiters.setdefault(wd, set()).add(event)
        try:
            yield event, None
        finally:
            self._drop(wd, event)

    def close(self) -> None:
        if self._fd is not None:
            asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()
        self._waiters.clear()

    def _add(self, path: Path) -> int | None:
        if not self._open():
            return None
        assert self._libc is not None and self._fd is not None
        wd = int(self._libc.inotify_add_watch(self._fd, os.fsencode(path), _IN_MODIFY))
        return wd if wd >= 0 else None

    def _drop(self, wd: int, event: asyncio.Event) -> None:
        waiters = self._waiters.get(wd)
        if waiters is None:
            return
        waiters.discard(event)
        if not waiters:
            del self._waiters[wd]
            if self._fd is not None and self._libc is not None:
                self._libc.inotify_rm_watch(self._fd, wd)

    def _open(self) -> bool:
        if self._fd is not None or self._broken:
            return not self._broken
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = int(libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC))
        except (OSError, AttributeError):
            fd = -1
        if fd < 0:
            self._broken = True
            return False
        self._libc, self._fd = libc, fd
        asyncio.get_running_loop().add_reader(fd, self._on_readable)
        return True

    def _on_readable(self) -> None:
        assert self._fd is not None
        try:
            data = os.read(self._fd, 64 * 1024)
        except BlockingIOError:
            return
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            offset += _EVENT.size + length
            waiters = self._waiters.get(wd, ())
            for event in waiters:
                event.set()
            if mask & _IN_IGNORED:
                # The file is gone (the run was removed): its followers must not wait any longer.
                self._waiters.pop(wd, None)
