"""``GET /api/events``: one server-sent events stream of the caller's own objects as they change.

Each change the engine records (``Dispatcher.feed``) is fetched again through the registry as
the stream's principal, exactly as ``GET /api/{kind}/{id}`` would be: a stranger's object
answers 404 and is never sent, so nothing leaks beyond what the caller may read. Logs are left
out (the page asks for them when a person opens them). Events:

- ``change``: ``{"kind": "tasks", "id": ..., "object": {...}}`` on every change;
- ``removed``: ``{"kind": ..., "id": ...}`` when the caller's object was deleted;
- ``resync``: the stream fell behind; list again.

The stream is one request against the rate limit however long it stays open. The credential is
checked again whenever something is to be sent and at every keep-alive, so a revoked key or an
ended session closes it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from mcp_server.auth.principal import PRINCIPAL_KEY, Principal
from mcp_server.context import Context
from mcp_server.dashboard.kinds import Kind
from mcp_server.engine.changes import Change
from mcp_server.errors import Forbidden, NotFound, Unauthorized
from mcp_server.http import error_response
from mcp_server.registry import Registry
from mcp_server.services import Services

KEEPALIVE_SECONDS = 15.0
StillValid = Callable[[Request, Principal], Awaitable[bool]]


def _frame(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _without_logs(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_logs(v) for k, v in value.items() if k != "logs"}
    if isinstance(value, list):
        return [_without_logs(v) for v in value]
    return value


class EventStream:
    def __init__(self, services: Services, registry: Registry, kinds: list[Kind], still_valid: StillValid) -> None:
        self.services = services
        self.registry = registry
        self.kinds = kinds
        self.still_valid = still_valid

    async def endpoint(self, request: Request) -> Response:
        principal = request.scope.get(PRINCIPAL_KEY)
        if not isinstance(principal, Principal):
            return error_response(Unauthorized("Authentication required"))
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(self._stream(request, principal), media_type="text/event-stream", headers=headers)

    async def _stream(self, request: Request, principal: Principal) -> AsyncIterator[str]:
        context = Context.for_principal(principal, self.services.parts)
        with self.services.dispatcher.feed.listen() as listener:
            yield "retry: 3000\n\n" + _frame("ready", {"kinds": [k.name for k in self.kinds]})
            while True:
                batch = await listener.next(KEEPALIVE_SECONDS)
                if not await self.still_valid(request, principal):
                    yield _frame("unauthorized", {"message": "The credential is no longer valid"})
                    return
                if batch is None:
                    yield _frame("resync", {})
                    continue
                if not batch:
                    yield ": keep-alive\n\n"
                for change in batch:
                    frame = await self._frame_for(context, change)
                    if frame:
                        yield frame

    async def _frame_for(self, context: Context, change: Change) -> str | None:
        kind = next((k for k in self.kinds if k.owns(change.object_id)), None)
        if kind is None:
            return None
        ids = {"kind": kind.name, "id": change.object_id}
        if change.removed_for is not None:
            return _frame("removed", ids) if change.removed_for == context.principal.user_id else None
        try:
            body = await self.registry.call(kind.get_tool, context, {kind.id_field: change.object_id})
        except (NotFound, Forbidden):
            return None  # not this caller's object (or not one they may read), or already gone
        return _frame("change", {**ids, "object": _without_logs(body.get(kind.singular))})
