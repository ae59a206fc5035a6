"""The audit log of state-changing requests, readable by administrators only."""

from __future__ import annotations

from typing import Any

from mcp_server.auth.audit import AuditLog
from mcp_server.auth.principal import Principal
from mcp_server.config import Settings
from mcp_server.context import Context
from mcp_server.errors import Forbidden
from mcp_server.ids import iso
from mcp_server.models.audit import AuditEvent, AuditList, AuditQuery
from mcp_server.registry import registry


def is_admin(principal: Principal, settings: Settings) -> bool:
    """The local operator, or a user listed in ``KUBEGATE_ADMIN_EMAILS``."""
    email = principal.email.lower()
    return principal.method == "local" or email == settings.operator_email.lower() or email in settings.admins


def _event(row: dict[str, Any]) -> AuditEvent:
    return AuditEvent(
        id=row["id"], timestamp=iso(row["created_at"]) or "", user_id=row["user_id"], email=row["email"],
        auth_method=row["auth_method"], method=row["method"], path=row["path"], action=row["action"],
        status=row["status"], client_ip=row["client_ip"],
    )


@registry.capability(scope="audit:read", title="List audit events", read_only=True, idempotent=True,
                     admin=True)
async def audit_list(ctx: Context, args: AuditQuery) -> AuditList:
    """List state-changing requests (who, what, when, from where, status), newest first. Admins only."""
    if not is_admin(ctx.principal, ctx.services.settings):
        raise Forbidden("Only administrators may read the audit log")
    rows, cursor = await AuditLog(ctx.services.db).page(limit=args.limit, cursor=args.cursor, user_id=args.user_id)
    return AuditList(events=[_event(row) for row in rows], next_cursor=cursor)
