"""A ``limits`` storage for one process: counts kept in memory, used only from the event loop.

``limits`` ships two memory storages, and both cost a busy asyncio server more than the
counting itself. The synchronous one expires old entries from a ``threading.Timer`` that it
restarts every 10 ms while requests keep coming: under load that is a hundred thread starts a
second, each a GIL hand-off the serving thread waits for. The asyncio one starts an expiry task
and a thread hop on every hit. Measured in process on the MCP request path, the Timer alone cost
about 40 us a request, four times the count itself.

This storage implements the library's storage interface (``Storage`` plus
``MovingWindowSupport``), so the strategy, ``limits.strategies.MovingWindowRateLimiter``, is the
library's own. Entries expire lazily, when their key is next touched, and keys nobody touched
for longer than their window are swept at most once a ``sweep_interval``, on the caller's
thread. There are no threads, no tasks and no locks: every method runs to completion on the
event loop, which is what makes ``acquire_entry`` atomic (with a limit of N, exactly N of any
number of parallel requests pass).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from limits.storage import MovingWindowSupport, Storage


@dataclass(slots=True)
class _Window:
    expiry: float
    stamps: deque[float] = field(default_factory=deque)  # oldest first

    def trim(self, now: float) -> None:
        horizon = now - self.expiry
        stamps = self.stamps
        while stamps and stamps[0] <= horizon:
            stamps.popleft()


@dataclass(slots=True)
class _Counter:
    value: int
    expires_at: float


class LoopMemoryStorage(Storage, MovingWindowSupport):
    """Moving-window (and fixed-window) counts in process memory, without background work."""

    STORAGE_SCHEME = ["kubegate+loop-memory"]

    def __init__(self, uri: str | None = None, *, sweep_interval: float = 60.0) -> None:
        super().__init__(uri)
        self.sweep_interval = sweep_interval
        self._windows: dict[str, _Window] = {}
        self._counters: dict[str, _Counter] = {}
        self._next_sweep = time.time() + sweep_interval

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ValueError

    # Moving window: a deque of hit times per key, trimmed to the window whenever it is touched.

    def _touched(self, key: str, expiry: int, now: float) -> _Window:
        """``key``'s window (made if new), trimmed to ``now``; idle windows swept now and then."""
        self._maybe_sweep(now)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window(float(expiry))
        window.trim(now)
        return window

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        now = time.time()
        window = self._touched(key, expiry, now)
        if len(window.stamps) + amount > limit:
            return False
        window.stamps.extend([now] * amount)
        return True

    def hit(self, key: str, limit: int, expiry: int) -> tuple[bool, float, int]:
        """``acquire_entry`` then ``get_moving_window`` in one step, at one instant: whether this
        hit is counted, the start of the window and how many hits it holds."""
        now = time.time()
        window = self._touched(key, expiry, now)
        stamps = window.stamps
        allowed = len(stamps) < limit
        if allowed:
            stamps.append(now)
        return allowed, (stamps[0] if stamps else now), len(stamps)

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """The start of the window (the oldest hit still in it) and how many hits it holds."""
        now = time.time()
        window = self._windows.get(key)
        if window is None:
            return now, 0
        window.trim(now)
        if not window.stamps:
            return now, 0
        return window.stamps[0], len(window.stamps)

    # Fixed window, for completeness of the storage interface.

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        self._maybe_sweep(now)
        counter = self._live_counter(key, now)
        if counter is None:
            counter = self._counters[key] = _Counter(0, now + expiry)
        counter.value += amount
        return counter.value

    def get(self, key: str) -> int:
        counter = self._live_counter(key, time.time())
        return counter.value if counter else 0

    def get_expiry(self, key: str) -> float:
        now = time.time()
        counter = self._live_counter(key, now)
        return counter.expires_at if counter else now

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        cleared = len(self._windows) + len(self._counters)
        self._windows.clear()
        self._counters.clear()
        return cleared

    def clear(self, key: str) -> None:
        self._windows.pop(key, None)
        self._counters.pop(key, None)

    def _live_counter(self, key: str, now: float) -> _Counter | None:
        counter = self._counters.get(key)
        if counter is not None and counter.expires_at <= now:
            del self._counters[key]
            return None
        return counter

    def _maybe_sweep(self, now: float) -> None:
        """Forget keys whose every entry has expired, so idle users hold no memory."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.sweep_interval
        for key, window in list(self._windows.items()):
            window.trim(now)
            if not window.stamps:
                del self._windows[key]
        for key, counter in list(self._counters.items()):
            if counter.expires_at <= now:
                del self._counters[key]

    def __len__(self) -> int:
        """How many keys hold state (for tests and metrics)."""
        return len(self._windows) + len(self._counters)
