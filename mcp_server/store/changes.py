"""A store-level signal: "another process may have changed the store", for waits that outlive a request.

A revocation made by another process on the same store (``kubegate keys revoke``, a second
replica, ``kubegate stdio`` beside ``kubegate serve``) must end calls in flight on that key here
too. Polling the store from every wait is wasteful, so each backend feeds one ``StoreChanges``
with the events it can deliver, and listeners (``auth.revocation``) recheck what they hold:

- SQLite: inotify on the data dir, filtered to the database file and its WAL. Our own writes
  touch them too, so each burst is coalesced (``SETTLE_SECONDS``) and then checked with
  ``PRAGMA data_version`` on the writing connection, which changes only when *another*
  connection committed. A check costs one pragma, and only after a write.
- PostgreSQL: ``LISTEN``/``NOTIFY`` (the backend notifies on commits that matter and calls
  ``changed()`` when a notification arrives).

``live`` says whether events are delivered at all (no inotify, or a network file system whose
other writers inotify cannot see); listeners then keep a periodic recheck as their only means.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

log = logging.getLogger(__name__)

SETTLE_SECONDS = 0.02
_IN_MODIFY, _IN_CREATE, _IN_MOVED_TO = 0x2, 0x100, 0x80
_IN_NONBLOCK, _IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
_HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)

Listener = Callable[[], None]


class StoreChanges:
    """Listeners called (on the event loop) whenever another process may have changed the store."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self.live = False

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def changed(self) -> None:
        for listener in list(self._listeners):
            listener()


class SqliteWatch:
    """Feeds ``changes`` from inotify on ``db_path`` (and its WAL), checked by ``foreign_commit``."""

    def __init__(self, db_path: Path, changes: StoreChanges, foreign_commit: Callable[[], Awaitable[bool]]) -> None:
        self._names = {db_path.name.encode(), f"{db_path.name}-wal".encode()}
        self._dir = db_path.parent
        self._changes = changes
        self._foreign_commit = foreign_commit
        self._fd = -1
        self._pending: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Watch, if this host offers inotify; otherwise ``changes.live`` stays False."""
        try:
            self._fd = _inotify_watch(self._dir, _IN_MODIFY | _IN_CREATE | _IN_MOVED_TO)
        except OSError as exc:
            log.info("no inotify on %s (%s): cross-process revocations are found by periodic rechecks only",
                     self._dir, exc)
            return
        asyncio.get_running_loop().add_reader(self._fd, self._readable)
        self._changes.live = True

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        if self._pending is None and self._touches_db(data):
            self._pending = asyncio.get_running_loop().create_task(self._settle())

    def _touches_db(self, data: bytes) -> bool:
        offset = 0
        while offset + _HEADER.size <= len(data):
            _wd, _mask, _cookie, length = _HEADER.unpack_from(data, offset)
            name = data[offset + _HEADER.size: offset + _HEADER.size + length].rstrip(b"\0")
            if name in self._names:
                return True
            offset += _HEADER.size + length
        return False

    async def _settle(self) -> None:
        try:
            await asyncio.sleep(SETTLE_SECONDS)  # one check for a burst of writes
            self._pending = None
            if await self._foreign_commit():
                self._changes.changed()
        except Exception as exc:  # a failed check must not stop the watch; the periodic recheck remains
            self._pending = None
            log.warning("store change check failed: %s", exc)

    async def close(self) -> None:
        if self._fd >= 0:
            asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
        self._changes.live = False
        if self._pending is not None:
            self._pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pending


def _inotify_watch(directory: Path, mask: int) -> int:
    """An inotify fd (non-blocking, close-on-exec) watching ``directory``'s entries."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name, use_errno=True)
    fd = int(libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC))
    if fd < 0:
        raise OSError(ctypes.get_errno(), "inotify_init1 failed")
    if libc.inotify_add_watch(fd, os.fsencode(directory), ctypes.c_uint32(mask)) < 0:
        errno = ctypes.get_errno()
        os.close(fd)
        raise OSError(errno, f"inotify_add_watch failed: {os.strerror(errno)}")
    return fd
