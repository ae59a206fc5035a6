"""The audit log: every state-changing request an authenticated caller makes, on every HTTP door,
and every failed authentication.

A row says who (user id, email, how they authenticated, which API key), what (HTTP method,
path, and the tool or login action), when, from where (client IP, see ``edge.scope.client_ip``)
and how it ended (HTTP status). Audited are POST/PUT/PATCH/DELETE under ``/api`` and ``/auth``
plus the login callback; on the MCP endpoint only calls of tools that are not read-only
(``tools/call`` or the shorthand), so an agent listing things does not flood the log. Refusals
after authentication (403) are recorded too, but not 429s (a flood must not fill the disk).
A failed authentication (401) is recorded without a user, and at most ``FAILED_AUTH_PER_HOUR``
times per client address. Paths are stored without their query string, and bodies never, so
no secret lands here. The edge (``edge.pipeline``) decides what is audited; a failure to
write the log is logged and never fails the request.
"""

from __future__ import annotations

import logging
from typing import Any

from limits import RateLimitItemPerHour
from limits.strategies import MovingWindowRateLimiter

from mcp_server.auth.loop_storage import LoopMemoryStorage
from mcp_server.auth.principal import Principal
from mcp_server.ids import new_id, stamp
from mcp_server.store.db import Database
from mcp_server.store.pages import fetch_page

log = logging.getLogger(__name__)

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
AUDITED_PREFIXES = ("/api/", "/auth/")
LOGIN_PATHS = frozenset({"/auth/callback"})
ACTION_KEY = "kubegate.audit_action"
"""Handlers may name what they did (``login``, ``logout``) in the scope under this key."""
AUTH_FAILED = "authentication_failed"
FAILED_AUTH_PER_HOUR = 100


def audited(method: str, path: str) -> bool:
    """Whether a request is a state change the log must show (MCP reads are filtered later)."""
    return path in LOGIN_PATHS or (method in UNSAFE_METHODS and path.startswith(AUDITED_PREFIXES))


class AuditLog:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._failures = MovingWindowRateLimiter(LoopMemoryStorage())
        self._failure_budget = RateLimitItemPerHour(FAILED_AUTH_PER_HOUR, namespace="kubegate-audit")

    async def record(self, *, principal: Principal | None, method: str, path: str, action: str | None, status: int,
                     client_ip: str | None, auth_method: str | None = None) -> None:
        user = (principal.user_id, principal.email, principal.method, principal.key_id) if principal else (
            None, None, auth_method, None)
        try:
            await self._db.execute(
                "INSERT INTO audit_log(id, created_at, user_id, email, auth_method, key_id, method, path, action,"
                " status, client_ip) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (new_id("audit"), stamp(), *user, method, path, action, status, client_ip),
            )
        except Exception:
            log.exception("could not write the audit log")

    async def failed_authentication(self, *, method: str, path: str, client_ip: str | None,
                                    auth_method: str | None) -> None:
        """Record a 401, unless this address already filled its hourly share of the log."""
        if not self._failures.hit(self._failure_budget, client_ip or "unknown"):
            return
        await self.record(principal=None, method=method, path=path, action=AUTH_FAILED, status=401,
                          client_ip=client_ip, auth_method=auth_method)

    async def page(self, *, limit: int, cursor: str | None, user_id: str | None) -> tuple[list[dict[str, Any]],
                                                                                          str | None]:
        """Newest first; the cursor names the last row of the previous page."""
        return await fetch_page(self._db, "audit_log", limit=limit, cursor=cursor, user_id=user_id)
