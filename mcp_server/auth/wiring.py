"""The security layer as the composition root needs it: one middleware stack and the /auth routes.

Order matters, outermost first (below the body guard the app puts around everything):
authentication finds the principal; the audit log then sees every authenticated request with its final status
(refusals below it included); the rate limiter counts it and stamps the ``X-RateLimit-*``
headers on whatever answers (a CSRF refusal too); CSRF runs last, just before the app.
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from mcp_server.auth.audit import AuditLog, AuditMiddleware
from mcp_server.auth.csrf import CsrfMiddleware
from mcp_server.auth.middleware import Authenticator, AuthMiddleware
from mcp_server.auth.ratelimit import RateLimiter, RateLimitMiddleware
from mcp_server.auth.routes import AuthRoutes, dev_login_refusal
from mcp_server.auth.sessions import SessionStore
from mcp_server.errors import NotFound
from mcp_server.registry import Registry
from mcp_server.services import Services


def _sessions(services: Services) -> SessionStore:
    return SessionStore(services.db, services.settings.session_max_age_seconds)


def security_middleware(services: Services, registry: Registry) -> list[Middleware]:
    settings = services.settings

    def read_only(tool: str) -> bool:
        try:
            return registry.get(tool).read_only
        except NotFound:
            return False

    return [
        Middleware(AuthMiddleware, services=services, sessions=_sessions(services)),
        Middleware(AuditMiddleware, audit=AuditLog(services.db), read_only=read_only),
        Middleware(RateLimitMiddleware, limiter=RateLimiter(settings)),
        Middleware(CsrfMiddleware, own_origin=settings.public_origin),
    ]


def auth_routes(services: Services) -> list[BaseRoute]:
    refusal = dev_login_refusal(services.settings)
    if refusal is not None:
        raise RuntimeError(refusal)
    sessions = _sessions(services)
    return AuthRoutes(services, sessions, Authenticator(services, sessions)).routes()
