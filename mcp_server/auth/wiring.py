"""The security layer as the composition root needs it: one middleware stack and the /auth routes.

Order matters, outermost first (below the body guard the app puts around everything):
authentication finds the principal; the audit log then sees every authenticated request with its final status
(refusals below it included); the rate limiter counts it and stamps the ``X-RateLimit-*``
headers on whatever answers (a CSRF refusal too); CSRF runs last, just before the app.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from mcp_server.auth.audit import AuditLog, AuditMiddleware
from mcp_server.auth.csrf import CsrfMiddleware
from mcp_server.auth.keys import KeyStore
from mcp_server.auth.middleware import Authenticator, AuthMiddleware
from mcp_server.auth.ratelimit import RateLimiter, RateLimitMiddleware
from mcp_server.auth.routes import AuthRoutes, dev_login_refusal
from mcp_server.auth.sessions import SessionStore
from mcp_server.config import Settings
from mcp_server.store.users import UserStore


def security_middleware(settings: Settings, keys: KeyStore, sessions: SessionStore, audit: AuditLog,
                        read_only: Callable[[str], bool]) -> list[Middleware]:
    """``read_only(tool)``: whether calling ``tool`` changes nothing (such MCP calls are not audited)."""
    return [
        Middleware(AuthMiddleware, authenticate=Authenticator(keys, sessions), settings=settings),
        Middleware(AuditMiddleware, audit=audit, read_only=read_only),
        Middleware(RateLimitMiddleware, limiter=RateLimiter(settings)),
        Middleware(CsrfMiddleware, own_origin=settings.public_origin),
    ]


def auth_routes(settings: Settings, users: UserStore, keys: KeyStore, sessions: SessionStore) -> list[BaseRoute]:
    refusal = dev_login_refusal(settings)
    if refusal is not None:
        raise RuntimeError(refusal)
    return AuthRoutes(settings, users, sessions, Authenticator(keys, sessions)).routes()
