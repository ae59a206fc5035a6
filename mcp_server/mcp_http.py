"""The MCP endpoint at ``/api/mcp``: Streamable HTTP, plus the spec's shorthand request.

The shorthand is a bare ``{"method": "api-keys/list", "params": {...}}`` (no ``jsonrpc``
member) answered with ``{"result": ...}``; ``a/b`` names tool ``a_b`` and ``-`` becomes ``_``
(``http.shorthand_tool``). The edge has already authenticated the caller and read and parsed
the body (``MCP_MESSAGE_KEY``); everything that is not the shorthand goes, body untouched, to
the SDK's session manager, through the per-user session cap.
"""

from __future__ import annotations

from typing import Any

from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from mcp_server.auth.middleware import Authenticator
from mcp_server.edge.calls import call, door_context
from mcp_server.edge.mcp_sessions import SessionCap
from mcp_server.edge.scope import principal_in, require_principal
from mcp_server.errors import BadRequest, KubegateError, NotFound
from mcp_server.http import MCP_MESSAGE_KEY, is_shorthand, send_error, shorthand_tool
from mcp_server.registry import Registry
from mcp_server.services import Services


class McpEndpoint:
    def __init__(self, manager: StreamableHTTPSessionManager, registry: Registry, services: Services,
                 authenticate: Authenticator) -> None:
        self.manager = manager
        self.registry = registry
        self.services = services
        self.authenticate = authenticate
        self.sessions = SessionCap(manager, services.settings.max_mcp_sessions_per_user)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = scope.get(MCP_MESSAGE_KEY) if scope["method"] == "POST" else None
        if isinstance(message, dict) and is_shorthand(message):
            await self._shorthand(scope, receive, send, message)
            return
        principal = principal_in(scope)
        await self.sessions.handle(scope, receive, send, principal.user_id if principal else "")

    async def _shorthand(self, scope: Scope, receive: Receive, send: Send, message: dict[str, Any]) -> None:
        try:
            principal = require_principal(scope)
            params = message.get("params") or {}
            if not isinstance(params, dict):
                raise BadRequest("params must be an object")
            tool = shorthand_tool(message["method"])
            try:
                self.registry.get(tool)
            except NotFound:
                raise NotFound(f"Unknown method '{message['method']}'") from None

            async def still_valid() -> bool:
                return await self.authenticate(scope) is not None

            result = await call(self.registry, tool, door_context(self.services, principal), params,
                                door="shorthand", still_valid=still_valid)
        except KubegateError as exc:
            await send_error(scope, receive, send, exc)
            return
        await JSONResponse({"result": result})(scope, receive, send)
