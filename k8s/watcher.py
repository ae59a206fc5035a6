"""List-then-watch one kind of object, for as long as the runtime lives (an informer, minus the cache).

The stream is resumed from the last resourceVersion it delivered whenever the server ends it
(timeouts, restarts, dropped connections), so no change is missed or replayed. When the
server no longer has that version (410 Gone) the watcher lists again and hands the handler
the full current set, flagged as a relist so the owner can notice objects that disappeared
during the gap. Failures to reach the API back off exponentially; that is the only waiting.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from k8s.client import Gone, Kind, KubeClient, Obj
from mcp_server import errors

log = logging.getLogger(__name__)

Handler = Callable[[str, Obj], None]
Relisted = Callable[[list[Obj]], None]
BACKOFF_MAX = 30.0


class Watcher:
    def __init__(self, client: KubeClient, kind: Kind, selector: str, handler: Handler, relisted: Relisted) -> None:
        self._client = client
        self._kind = kind
        self._selector = selector
        self._handler = handler
        self._relisted = relisted
        self.synced = asyncio.Event()
        self.resource_version: str | None = None
        self.resumes = 0
        self.relists = 0

    async def run(self) -> None:
        backoff = 0.1
        while True:
            try:
                if self.resource_version is None:
                    await self._list()
                await self._stream()
                self.resumes += 1
                backoff = 0.1
            except Gone:
                log.info("watch on %s expired at %s; listing again", self._kind, self.resource_version)
                self.resource_version = None
            except Exception as exc:  # a watcher that dies silently would freeze every run; keep going
                reason = exc.message if isinstance(exc, errors.KubegateError) else repr(exc)
                log.warning("watch on %s failed (%s); retrying in %.1fs", self._kind, reason, backoff)
                await asyncio.sleep(backoff)
                backoff = min(BACKOFF_MAX, backoff * 2)

    async def _list(self) -> None:
        items, self.resource_version = await self._client.list(self._kind, self._selector)
        for item in items:
            self._handler("ADDED", item)
        if self.synced.is_set():
            self.relists += 1
            self._relisted(items)
        self.synced.set()

    async def _stream(self) -> None:
        assert self.resource_version is not None
        async for event in self._client.watch(self._kind, self._selector, self.resource_version):
            self.resource_version = event.object["metadata"]["resourceVersion"]
            if event.type != "BOOKMARK":
                self._handler(event.type, event.object)
