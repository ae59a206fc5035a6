"""The security layer as the composition root needs it: the edge in front of every door, and /auth.

The edge (``edge.pipeline.Edge``) is one middleware that authenticates, rate-limits, checks
CSRF and audits each request in one pass; see its module for the order and why.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from mcp_server.auth.audit import AuditLog
from mcp_server.auth.keys import KeyStore
from mcp_server.auth.middleware import Authenticator
from mcp_server.auth.ratelimit import RateLimiter
from mcp_server.auth.routes import AuthRoutes, dev_login_refusal
from mcp_server.auth.sessions import SessionStore
from mcp_server.config import Settings
from mcp_server.store.users import UserStore


def edge_middleware(settings: Settings, authenticate: Authenticator, limiter: RateLimiter, audit: AuditLog,
                    read_only: Callable[[str], bool]) -> Middleware:
    """``read_only(tool)``: whether calling ``tool`` changes nothing (such MCP calls are not audited)."""
    from mcp_server.edge.pipeline import Edge  # the edge uses auth; auth only hands it its parts

    return Middleware(Edge, settings=settings, authenticate=authenticate, limiter=limiter, audit=audit,
                      read_only=read_only)


def auth_routes(settings: Settings, users: UserStore, keys: KeyStore, sessions: SessionStore) -> list[BaseRoute]:
    refusal = dev_login_refusal(settings)
    if refusal is not None:
        raise RuntimeError(refusal)
    return AuthRoutes(settings, users, sessions, Authenticator(keys, sessions)).routes()
