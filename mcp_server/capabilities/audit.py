"""The audit log of state-changing requests, readable by administrators only."""

from __future__ import annotations

from mcp_server.context import Context
from mcp_server.ids import iso
from mcp_server.models.audit import AuditEvent, AuditList, AuditQuery
from mcp_server.registry import registry
from mcp_server.store.audit import AuditRecord


def _event(record: AuditRecord) -> AuditEvent:
    entry = record.entry
    return AuditEvent(
        id=record.id, timestamp=iso(record.created_at) or "", user_id=entry.user_id, email=entry.email,
        auth_method=entry.auth_method, method=entry.method, path=entry.path, action=entry.action,
        status=entry.status, client_ip=entry.client_ip, key_id=entry.key_id,
    )


@registry.capability(scope="audit:read", title="List audit events", read_only=True, idempotent=True,
                     admin=True)
async def audit_list(ctx: Context, args: AuditQuery) -> AuditList:
    """List state-changing requests (who, what, when, from where, status), newest first. Admins only."""
    ctx.policy.require_admin(ctx.principal, "read the audit log")
    records, cursor = await ctx.audit.page(limit=args.limit, cursor=args.cursor, user_id=args.user_id)
    return AuditList(events=[_event(record) for record in records], next_cursor=cursor)
