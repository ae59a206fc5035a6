"""One authentication middleware for REST and MCP over HTTP.

It turns ``Authorization: Bearer sk_live_...`` into a ``Principal`` stored in the request
scope, where handlers find it. Every path under ``/api`` needs one; anything else (health,
docs, OpenAPI, login) passes through. Failures are 401 in the documented shape with a
``WWW-Authenticate`` challenge that points MCP clients at the protected-resource metadata.
"""

from __future__ import annotations

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_server.auth.principal import Principal
from mcp_server.errors import Unauthorized
from mcp_server.http import send_error
from mcp_server.services import Services

PROTECTED_PREFIX = "/api"
PRINCIPAL_KEY = "kubegate.principal"


def bearer_token(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


class AuthMiddleware:
    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services
        metadata = f"{services.settings.public_url}/.well-known/oauth-protected-resource/api/mcp"
        self.challenge = f'Bearer realm="kubegate", resource_metadata="{metadata}"'

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not (path == PROTECTED_PREFIX or path.startswith(PROTECTED_PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        principal = await self.authenticate(scope)
        if principal is None:
            error = Unauthorized("Missing or invalid credentials: send Authorization: Bearer sk_live_...")
            await send_error(scope, receive, send, error, {"WWW-Authenticate": self.challenge})
            return
        scope[PRINCIPAL_KEY] = principal
        # The MCP SDK binds each Streamable HTTP session to the user that opened it.
        scope["user"] = AuthenticatedUser(AccessToken(
            token="", client_id=principal.user_id, scopes=list(principal.scopes), subject=principal.user_id
        ))
        await self.app(scope, receive, send)

    async def authenticate(self, scope: Scope) -> Principal | None:
        token = bearer_token(scope)
        if token is None:
            return None
        return await self.services.keys.authenticate(token)
