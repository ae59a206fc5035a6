"""The MCP endpoint at ``/api/mcp``: Streamable HTTP, plus the spec's shorthand request.

The shorthand is a bare ``{"method": "api-keys/list", "params": {...}}`` (no ``jsonrpc``
member) answered with ``{"result": ...}``; ``a/b`` names tool ``a_b`` and ``-`` becomes ``_``.
Everything else is handed, body untouched, to the SDK's session manager.
"""

from __future__ import annotations

from typing import Any

from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from mcp_server.auth.middleware import PRINCIPAL_KEY
from mcp_server.auth.principal import Principal
from mcp_server.context import Context
from mcp_server.errors import BadRequest, KubegateError, NotFound, Unauthorized
from mcp_server.http import MCP_MESSAGE_KEY, json_or_none, send_error
from mcp_server.registry import Registry
from mcp_server.services import Services


def shorthand_tool(method: str) -> str:
    return method.strip("/").replace("/", "_").replace("-", "_")


class McpEndpoint:
    def __init__(self, manager: StreamableHTTPSessionManager, registry: Registry, services: Services) -> None:
        self.manager = manager
        self.registry = registry
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await self.manager.handle_request(scope, receive, send)
            return
        if MCP_MESSAGE_KEY in scope:  # the audit layer read and parsed it already
            message = scope[MCP_MESSAGE_KEY]
        else:
            body = await _read_body(receive)
            message = json_or_none(body)
            receive = _replay(body, receive)
        if isinstance(message, dict) and "jsonrpc" not in message and isinstance(message.get("method"), str):
            await self._shorthand(scope, receive, send, message)
            return
        await self.manager.handle_request(scope, receive, send)

    async def _shorthand(self, scope: Scope, receive: Receive, send: Send, message: dict[str, Any]) -> None:
        principal = scope.get(PRINCIPAL_KEY)
        try:
            if not isinstance(principal, Principal):
                raise Unauthorized("Authentication required")
            params = message.get("params") or {}
            if not isinstance(params, dict):
                raise BadRequest("params must be an object")
            tool = shorthand_tool(message["method"])
            try:
                self.registry.get(tool)
            except NotFound:
                raise NotFound(f"Unknown method '{message['method']}'") from None
            result = await self.registry.call(tool, Context.for_principal(principal, self.services.parts), params)
        except KubegateError as exc:
            await send_error(scope, receive, send, exc)
            return
        await JSONResponse({"result": result})(scope, receive, send)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
