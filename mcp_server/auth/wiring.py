"""The security layer as the composition root needs it: the edge in front of every door, and /auth.

The edge (``edge.pipeline.Edge``) is one middleware that authenticates, rate-limits, checks
CSRF and audits each request in one pass; see its module for the order and why.
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from mcp_server.auth.audit import AuditLog
from mcp_server.auth.middleware import Authenticator
from mcp_server.auth.ratelimit import RateLimiter
from mcp_server.auth.routes import AuthRoutes, dev_login_refusal
from mcp_server.auth.sessions import SessionStore
from mcp_server.edge.pipeline import Edge
from mcp_server.errors import NotFound
from mcp_server.registry import Registry
from mcp_server.services import Services


def sessions_of(services: Services) -> SessionStore:
    return SessionStore(services.db, services.settings.session_max_age_seconds)


def authenticator(services: Services) -> Authenticator:
    return Authenticator(services.keys, sessions_of(services))


def edge_middleware(services: Services, registry: Registry, limiter: RateLimiter) -> Middleware:
    def read_only(tool: str) -> bool:
        try:
            return registry.get(tool).read_only
        except NotFound:
            return False

    return Middleware(Edge, settings=services.settings, authenticate=authenticator(services),
                      limiter=limiter, audit=AuditLog(services.db), read_only=read_only)


def auth_routes(services: Services) -> list[BaseRoute]:
    refusal = dev_login_refusal(services.settings)
    if refusal is not None:
        raise RuntimeError(refusal)
    sessions = sessions_of(services)
    return AuthRoutes(services, sessions, Authenticator(services.keys, sessions)).routes()
