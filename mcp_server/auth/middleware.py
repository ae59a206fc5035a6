"""One authentication middleware for REST and MCP over HTTP.

It turns ``Authorization: Bearer sk_live_...`` or the ``session`` cookie set at login into a
``Principal`` stored in the request scope, where handlers find it. A bearer header wins over a
cookie (and a bad bearer is not rescued by one). Every path under ``/api`` needs a principal;
anything else (health, docs, OpenAPI, login) passes through. Failures are 401 in the
documented shape with a ``WWW-Authenticate`` challenge that points MCP clients at the
protected-resource metadata.
"""

from __future__ import annotations

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_server.auth.csrf import session_cookie
from mcp_server.auth.keys import KeyStore
from mcp_server.auth.principal import PRINCIPAL_KEY, Principal
from mcp_server.auth.sessions import SessionStore
from mcp_server.config import Settings
from mcp_server.errors import Unauthorized
from mcp_server.http import MCP_PATH, send_error

PROTECTED_PREFIX = "/api"

__all__ = ["PRINCIPAL_KEY", "PROTECTED_PREFIX", "AuthMiddleware", "Authenticator", "bearer_token"]


def bearer_token(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


def _has_authorization(scope: Scope) -> bool:
    return any(name == b"authorization" for name, _ in scope["headers"])


class Authenticator:
    """Credentials -> principal, shared by the middleware and the ``/auth`` routes."""

    def __init__(self, keys: KeyStore, sessions: SessionStore) -> None:
        self.keys = keys
        self.sessions = sessions

    async def __call__(self, scope: Scope) -> Principal | None:
        if _has_authorization(scope):
            token = bearer_token(scope)
            return await self.keys.authenticate(token) if token else None
        cookie = session_cookie(scope)
        return await self.sessions.authenticate(cookie) if cookie else None


class AuthMiddleware:
    def __init__(self, app: ASGIApp, authenticate: Authenticator, settings: Settings) -> None:
        self.app = app
        self.authenticate = authenticate
        metadata = f"{settings.public_url}/.well-known/oauth-protected-resource/api/mcp"
        self.challenge = f'Bearer realm="kubegate", resource_metadata="{metadata}"'
        self.bind_sessions = not settings.mcp_stateless  # stateless MCP has no sessions to bind

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not (path == PROTECTED_PREFIX or path.startswith(PROTECTED_PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        principal = await self.authenticate(scope)
        if principal is None:
            error = Unauthorized("Missing or invalid credentials: send Authorization: Bearer sk_live_... "
                                 "or log in at /auth/login")
            await send_error(scope, receive, send, error, {"WWW-Authenticate": self.challenge})
            return
        scope[PRINCIPAL_KEY] = principal
        if self.bind_sessions and path == MCP_PATH:
            # The MCP SDK binds each Streamable HTTP session to the user that opened it.
            scope["user"] = AuthenticatedUser(AccessToken(
                token="", client_id=principal.user_id, scopes=list(principal.scopes), subject=principal.user_id
            ))
        await self.app(scope, receive, send)
