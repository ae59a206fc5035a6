"""A cap on the MCP sessions one user may hold open (``KUBEGATE_MAX_MCP_SESSIONS_PER_USER``).

The SDK's session manager caps sessions globally (``KUBEGATE_MAX_MCP_SESSIONS``), so without a
per-user cap a couple of accounts could fill its table and lock everyone else out. When a user
at the cap opens another session, their oldest idle session (no request in flight, no open
stream) is closed to make room; if every one of them is busy, the new one is refused with a
JSON-RPC error (HTTP 429) that says how to free one.

Sessions are learnt from the ``Mcp-Session-Id`` the SDK answers an opening request with, and
forgotten once the SDK no longer knows them (client DELETE, idle timeout, crash).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import mcp_types as types
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.types import Message, Receive, Scope, Send

from mcp_server.edge.scope import header
from mcp_server.http import dumps

_SESSION_HEADER = MCP_SESSION_ID_HEADER.lower().encode()


@dataclass(slots=True)
class _Open:
    user_id: str
    last_used: float
    in_flight: int = 0


class SessionCap:
    def __init__(self, manager: StreamableHTTPSessionManager, per_user: int) -> None:
        self.manager = manager
        self.per_user = per_user
        self.open: dict[str, _Open] = {}
        self.opening: dict[str, int] = {}  # per user: opening requests not answered yet

    def _live(self) -> dict[str, Any]:
        # The SDK keeps its sessions in this dict; reading it is the only way to learn that a
        # session ended on its own (idle timeout). Checked against the pinned SDK by the tests.
        instances: dict[str, Any] = self.manager._server_instances  # noqa: SLF001
        return instances

    async def handle(self, scope: Scope, receive: Receive, send: Send, user_id: str) -> None:
        session = header(scope, _SESSION_HEADER)
        if session is not None:
            await self._in_session(session.decode("latin-1"), scope, receive, send)
        elif scope["method"] == "POST" and not self.manager.stateless:
            await self._opening(user_id, scope, receive, send)
        else:
            await self.manager.handle_request(scope, receive, send)

    async def _in_session(self, session: str, scope: Scope, receive: Receive, send: Send) -> None:
        known = self.open.get(session)
        if known is None:
            await self.manager.handle_request(scope, receive, send)
            return
        known.in_flight += 1
        try:
            await self.manager.handle_request(scope, receive, send)
        finally:
            known.in_flight -= 1
            known.last_used = time.monotonic()

    async def _opening(self, user_id: str, scope: Scope, receive: Receive, send: Send) -> None:
        if not await self._make_room(user_id):
            await _refuse(send, f"Too many open MCP sessions for this user (at most {self.per_user}); "
                                "end one with DELETE /api/mcp or let it idle")
            return
        opened: list[str] = []
        self.opening[user_id] = self.opening.get(user_id, 0) + 1

        async def noting_send(message: Message) -> None:
            if message["type"] == "http.response.start" and int(message["status"]) < 400:
                opened.extend(v.decode("latin-1") for k, v in message.get("headers", ()) if k == _SESSION_HEADER)
            await send(message)

        entry = _Open(user_id, time.monotonic(), in_flight=1)
        try:
            await self.manager.handle_request(scope, receive, noting_send)
        finally:
            self.opening[user_id] -= 1
            if not self.opening[user_id]:
                del self.opening[user_id]
            entry.in_flight -= 1
            entry.last_used = time.monotonic()
            if opened and opened[0] in self._live():
                self.open[opened[0]] = entry

    async def _make_room(self, user_id: str) -> bool:
        live = self._live()
        for gone in [sid for sid in self.open if sid not in live]:
            del self.open[gone]
        mine = [(entry.last_used, sid) for sid, entry in self.open.items() if entry.user_id == user_id]
        if len(mine) + self.opening.get(user_id, 0) < self.per_user:
            return True
        idle = sorted((used, sid) for used, sid in mine if self.open[sid].in_flight == 0)
        if not idle:
            return False
        _, oldest = idle[0]
        del self.open[oldest]
        transport = live.get(oldest)
        if transport is not None:
            await transport.terminate()  # its server task ends and the SDK forgets it
            live.pop(oldest, None)
        return True


async def _refuse(send: Send, message: str) -> None:
    body = dumps(types.JSONRPCError(jsonrpc="2.0", id=None, error=types.ErrorData(
        code=types.INVALID_REQUEST, message=message)).model_dump(by_alias=True, exclude_none=True))
    await send({"type": "http.response.start", "status": 429, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
