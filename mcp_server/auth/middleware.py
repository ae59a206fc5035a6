"""Credentials -> principal, for the edge (``edge.pipeline``) and the ``/auth`` routes.

``Authorization: Bearer sk_live_...`` or the ``session`` cookie set at login becomes a
``Principal``. A bearer header wins over a cookie (and a bad bearer is not rescued by one).
"""

from __future__ import annotations

from starlette.types import Scope

from mcp_server.auth.csrf import session_cookie
from mcp_server.auth.keys import KeyStore
from mcp_server.auth.principal import Principal
from mcp_server.auth.sessions import SessionStore

__all__ = ["Authenticator", "bearer_token"]


def bearer_token(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


def _has_authorization(scope: Scope) -> bool:
    return any(name == b"authorization" for name, _ in scope["headers"])


class Authenticator:
    def __init__(self, keys: KeyStore, sessions: SessionStore) -> None:
        self.keys = keys
        self.sessions = sessions

    async def __call__(self, scope: Scope) -> Principal | None:
        if _has_authorization(scope):
            token = bearer_token(scope)
            return await self.keys.authenticate(token) if token else None
        cookie = session_cookie(scope)
        return await self.sessions.authenticate(cookie) if cookie else None
