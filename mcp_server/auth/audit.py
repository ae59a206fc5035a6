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

from limits import RateLimitItemPerHour
from limits.strategies import MovingWindowRateLimiter

from mcp_server.auth.loop_storage import LoopMemoryStorage
from mcp_server.auth.principal import Principal
from mcp_server.store.audit import AuditEntry, AuditRecord, AuditStore

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
    """Writes who did what; the rows live in ``store.audit``."""

    def __init__(self, store: AuditStore) -> None:
        self._store = store
        self._failures = MovingWindowRateLimiter(LoopMemoryStorage())
        self._failure_budget = RateLimitItemPerHour(FAILED_AUTH_PER_HOUR, namespace="kubegate-audit")

    async def record(self, *, principal: Principal | None, method: str, path: str, action: str | None, status: int,
                     client_ip: str | None, auth_method: str | None = None) -> None:
        try:
            await self._store.add(AuditEntry(
                user_id=principal.user_id if principal else None, email=principal.email if principal else None,
                auth_method=principal.method if principal else auth_method, method=method, path=path,
                action=action, status=status, client_ip=client_ip, key_id=principal.key_id if principal else None,
            ))
        except Exception:
            log.exception("could not write the audit log")

    async def failed_authentication(self, *, method: str, path: str, client_ip: str | None,
                                    auth_method: str | None) -> None:
        """Record a 401, unless this address already filled its hourly share of the log."""
        if not self._failures.hit(self._failure_budget, client_ip or "unknown"):
            return
        await self.record(principal=None, method=method, path=path, action=AUTH_FAILED, status=401,
                          client_ip=client_ip, auth_method=auth_method)

    async def page(self, *, limit: int, cursor: str | None,
                   user_id: str | None) -> tuple[list[AuditRecord], str | None]:
        """Newest first; the cursor names the last row of the previous page."""
        return await self._store.page(limit=limit, cursor=cursor, user_id=user_id)
