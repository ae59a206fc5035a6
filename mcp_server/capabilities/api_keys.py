"""API key management: create (shown once), list, revoke."""

from __future__ import annotations

import json
from typing import Any

from mcp_server.auth.principal import covers
from mcp_server.context import Context
from mcp_server.errors import Forbidden, NotFound
from mcp_server.ids import iso
from mcp_server.models.api_keys import (
    ApiKey,
    ApiKeyCreate,
    ApiKeyEnvelope,
    ApiKeyList,
    ApiKeyRef,
    NewApiKey,
    NewApiKeyEnvelope,
)
from mcp_server.models.base import NoArgs
from mcp_server.registry import registry


def _key(row: dict[str, Any]) -> ApiKey:
    return ApiKey(
        id=row["id"], name=row["name"], prefix=row["prefix"], scopes=json.loads(row["scopes"]),
        created_at=iso(row["created_at"]) or "", expires_at=iso(row["expires_at"]),
        last_used_at=iso(row["last_used_at"]), revoked_at=iso(row["revoked_at"]),
    )


@registry.capability(scope="api-keys:read", title="List API keys", read_only=True, idempotent=True)
async def api_keys_list(ctx: Context, args: NoArgs) -> ApiKeyList:
    """List the caller's live API keys (never the secret itself), newest first."""
    rows = await ctx.services.keys.list(ctx.principal.user_id)
    return ApiKeyList(api_keys=[_key(row) for row in rows])


@registry.capability(scope="api-keys:write", title="Create an API key")
async def api_keys_create(ctx: Context, args: ApiKeyCreate) -> NewApiKeyEnvelope:
    """Create an API key for the caller. The full key is in the answer and is never shown again.

    A key can only be given scopes the caller itself holds.
    """
    if not covers(ctx.principal.scopes, args.scopes):
        raise Forbidden("A key cannot be given scopes that the caller does not hold")
    new = await ctx.services.keys.create(ctx.principal.user_id, args.name, args.scopes, args.expires_in_days)
    shown = _key(new.row)
    return NewApiKeyEnvelope(api_key=NewApiKey(
        id=shown.id, name=shown.name, key=new.secret, prefix=shown.prefix, scopes=shown.scopes,
        created_at=shown.created_at, expires_at=shown.expires_at,
    ))


@registry.capability(scope="api-keys:write", title="Revoke an API key", destructive=True, idempotent=True)
async def api_keys_revoke(ctx: Context, args: ApiKeyRef) -> ApiKeyEnvelope:
    """Revoke one of the caller's API keys. It stops working on the very next request."""
    row = await ctx.services.keys.revoke(ctx.principal.user_id, args.key_id)
    if row is None:
        raise NotFound("API key not found")
    return ApiKeyEnvelope(api_key=_key(row))
