"""The audit log: every state-changing request an authenticated caller makes, on every HTTP door.

A row says who (user id, email, how they authenticated), what (HTTP method, path, and the tool
or login action), when, from where (client IP) and how it ended (HTTP status). Audited are
POST/PUT/PATCH/DELETE under ``/api`` and ``/auth`` plus the login callback; on the MCP
endpoint only calls of tools that are not read-only (``tools/call`` or the shorthand), so an
agent listing things does not flood the log. Refusals after authentication (403) are recorded
too, but not 429s (a flood must not fill the disk). Paths are stored without their query
string, and bodies never, so no secret lands here. A failure to write the log is logged and never fails the request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_server.auth.principal import PRINCIPAL_KEY, Principal
from mcp_server.http import MCP_MESSAGE_KEY, MCP_PATH, json_or_none
from mcp_server.store.audit import AuditEntry, AuditRecord, AuditStore

log = logging.getLogger(__name__)

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
AUDITED_PREFIXES = ("/api/", "/auth/")
LOGIN_PATHS = frozenset({"/auth/callback"})
ACTION_KEY = "kubegate.audit_action"
"""Handlers may name what they did (``login``, ``logout``) in the scope under this key."""


class AuditLog:
    """Writes who did what; the rows live in ``store.audit``."""

    def __init__(self, store: AuditStore) -> None:
        self._store = store

    async def record(self, *, principal: Principal, method: str, path: str, action: str | None, status: int,
                     client_ip: str | None) -> None:
        await self._store.add(AuditEntry(
            user_id=principal.user_id, email=principal.email, auth_method=principal.method, method=method,
            path=path, action=action, status=status, client_ip=client_ip,
        ))

    async def page(self, *, limit: int, cursor: str | None,
                   user_id: str | None) -> tuple[list[AuditRecord], str | None]:
        """Newest first; the cursor names the last row of the previous page."""
        return await self._store.page(limit=limit, cursor=cursor, user_id=user_id)


def _mcp_tool(message: Any) -> str | None:
    """The tool a JSON-RPC ``tools/call`` or a shorthand request names, else ``None``."""
    if not isinstance(message, dict) or not isinstance(message.get("method"), str):
        return None
    if "jsonrpc" not in message:
        return str(message["method"]).strip("/").replace("/", "_").replace("-", "_")
    params = message.get("params")
    if message["method"] == "tools/call" and isinstance(params, dict) and isinstance(params.get("name"), str):
        return str(params["name"])
    return None


async def _read_all(receive: Receive) -> tuple[bytes, list[Message]]:
    body, messages = b"", []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return body, messages
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body, messages


class AuditMiddleware:
    """Sits just behind authentication, so it sees every authenticated request and its final status."""

    def __init__(self, app: ASGIApp, audit: AuditLog, read_only: Callable[[str], bool]) -> None:
        self.app = app
        self.audit = audit
        self.read_only = read_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path in LOGIN_PATHS or (scope.get("method") in UNSAFE_METHODS and path.startswith(AUDITED_PREFIXES))):
            await self.app(scope, receive, send)
            return
        action: str | None = None
        if path == MCP_PATH and scope["method"] == "POST":
            body, messages = await _read_all(receive)
            message = scope[MCP_MESSAGE_KEY] = json_or_none(body)
            action = _mcp_tool(message)
            if action is None or self.read_only(action):
                await self.app(scope, _replay(messages, receive), send)
                return
            receive = _replay(messages, receive)
        status = 500

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            await self._record(scope, path, action, status)

    async def _record(self, scope: Scope, path: str, action: str | None, status: int) -> None:
        principal = scope.get(PRINCIPAL_KEY)
        if not isinstance(principal, Principal) or status == 429:
            return  # 429s are counted by the limiter; logging each would let a flood fill the disk
        endpoint = scope.get("endpoint")
        action = action or scope.get(ACTION_KEY) or getattr(endpoint, "__name__", None)
        client = scope.get("client")
        try:
            await self.audit.record(principal=principal, method=scope["method"], path=path, action=action,
                                    status=status, client_ip=client[0] if client else None)
        except Exception:
            log.exception("could not write the audit log")


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay
