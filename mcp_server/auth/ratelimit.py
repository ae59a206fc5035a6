"""Per-user hourly rate limits for every authenticated HTTP request, REST and MCP alike.

Counting is done by the ``limits`` library with a moving window, so there is no burst at a
window edge, and ``hit`` is atomic in every storage it supports: with a limit of N, exactly N
of any number of parallel requests pass. A user has one bucket per credential kind (the
session limit and the API-key limit are separate budgets), shared by all of the user's keys.
Storage is process memory unless ``KUBEGATE_RATE_LIMIT_STORAGE`` names a shared one
(``redis://...``), which makes the limit hold across replicas.

Process memory is counted by the library's synchronous moving-window strategy over
``LoopMemoryStorage`` (see its module for why not the library's own memory storages), called
on the event loop: a hit is a few list operations with no I/O and no background work. A
network storage uses the library's asyncio strategy, so waiting on Redis never blocks the loop.

The edge (``edge.pipeline``) counts each authenticated request and adds the headers at
``http.response.start``, so streamed (SSE) MCP responses carry them too.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, RateLimitItemPerHour, WindowStats
from limits.aio.strategies import MovingWindowRateLimiter as AsyncMovingWindow
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from mcp_server.auth.loop_storage import LoopMemoryStorage
from mcp_server.auth.principal import Principal
from mcp_server.config import Settings

log = logging.getLogger(__name__)
_WARM_UP_KEY = "kubegate/warm-up"
_KEY_CACHE = 100_000


def async_storage_url(url: str) -> str:
    """``limits`` names its asyncio storages ``async+<scheme>://``; accept the plain form too."""
    return url if url.startswith("async+") else f"async+{url}"


def is_memory_storage(url: str) -> bool:
    return url.removeprefix("async+").split("://", 1)[0] == "memory"


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_at: float

    @property
    def reset(self) -> int:
        return math.ceil(self.reset_at)

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"x-ratelimit-limit", str(self.limit).encode()),
                (b"x-ratelimit-remaining", str(self.remaining).encode()),
                (b"x-ratelimit-reset", str(self.reset).encode())]

    def retry_after(self) -> int:
        return max(1, math.ceil(self.reset_at - time.time()))


class RateLimiter:
    def __init__(self, settings: Settings) -> None:
        url = settings.rate_limit_storage
        self._local: MovingWindowRateLimiter | None = None
        self._shared: AsyncMovingWindow | None = None
        self._storage: Any = None
        self._keys: dict[tuple[str, str], str] = {}
        self._local_storage = LoopMemoryStorage()
        if is_memory_storage(url):
            self._local = MovingWindowRateLimiter(self._local_storage)
        else:
            self._storage = storage_from_string(async_storage_url(url))
            self._shared = AsyncMovingWindow(self._storage)
        self._session = RateLimitItemPerHour(settings.rate_limit_session, namespace="kubegate")
        self._api_key = RateLimitItemPerHour(settings.rate_limit_api_key, namespace="kubegate")

    async def warm_up(self) -> None:
        """Load the shared storage's scripts before the first request, so that none races to load them.

        When a burst of first requests finds Redis without the moving-window script, the client
        library's load-and-retry path has been measured to count one of them twice (admitting
        N-1 of N). A hit on a private key with a limit nobody reaches loads both scripts first.
        """
        if self._storage is None:
            return
        try:
            await self._storage.acquire_entry(_WARM_UP_KEY, 2**31, 1)
            await self._storage.get_moving_window(_WARM_UP_KEY, 2**31, 1)
        except Exception as exc:
            log.warning("the rate-limit storage did not answer at start (%s); counting continues when it does",
                        type(exc).__name__)

    async def _count(self, item: RateLimitItem, user_id: str, kind: str) -> tuple[bool, WindowStats]:
        if self._local is not None:
            return self._count_local(item, user_id, kind)
        assert self._shared is not None
        allowed = await self._shared.hit(item, user_id, kind)
        return allowed, await self._shared.get_window_stats(item, user_id, kind)

    def _count_local(self, item: RateLimitItem, user_id: str, kind: str) -> tuple[bool, WindowStats]:
        """The strategy's ``hit`` and ``get_window_stats`` in one storage step, with the storage key built once.

        Building the key (``RateLimitItem.key_for``) cost as much as counting; keys are kept
        per user (bounded by ``_KEY_CACHE``).
        """
        storage = self._local_storage
        key = self._keys.get((user_id, kind))
        if key is None:
            if len(self._keys) >= _KEY_CACHE:
                self._keys.clear()
            key = self._keys[(user_id, kind)] = item.key_for(user_id, kind)
        expiry = item.get_expiry()
        allowed, start, count = storage.hit(key, item.amount, expiry)
        return allowed, WindowStats(start + expiry, item.amount - count)

    def item_for(self, principal: Principal) -> RateLimitItem:
        return self._session if principal.method == "session" else self._api_key

    async def hit(self, principal: Principal) -> Verdict:
        """Count one request for the principal's user and say whether it may proceed."""
        item = self.item_for(principal)
        kind = "session" if item is self._session else "key"
        allowed, stats = await self._count(item, principal.user_id, kind)
        # In a moving window the reset is when the oldest counted request leaves it and frees a slot.
        return Verdict(allowed=allowed, limit=item.amount, remaining=max(0, stats.remaining),
                       reset_at=stats.reset_time)
