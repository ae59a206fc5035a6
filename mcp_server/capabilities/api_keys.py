"""API key management: create (shown once), list, revoke."""

from __future__ import annotations

from mcp_server.auth.policy import require_scopes_held
from mcp_server.context import Context
from mcp_server.errors import NotFound
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
from mcp_server.store.api_keys import ApiKeyRecord


def _key(key: ApiKeyRecord) -> ApiKey:
    return ApiKey(
        id=key.id, name=key.name, prefix=key.prefix, scopes=list(key.scopes), created_at=iso(key.created_at) or "",
        expires_at=iso(key.expires_at), last_used_at=iso(key.last_used_at), revoked_at=iso(key.revoked_at),
        parent_id=key.parent_id,
    )


@registry.capability(scope="api-keys:read", title="List API keys", read_only=True, idempotent=True)
async def api_keys_list(ctx: Context, args: NoArgs) -> ApiKeyList:
    """List your live API keys (never the secret), newest first."""
    return ApiKeyList(api_keys=[_key(key) for key in await ctx.keys.list(ctx.principal.user_id)])


@registry.capability(scope="api-keys:write", title="Create an API key")
async def api_keys_create(ctx: Context, args: ApiKeyCreate) -> NewApiKeyEnvelope:
    """Create an API key; the secret is shown only in this answer.

    Only scopes you hold; a key made with a key expires no later than it and is revoked with it.
    """
    require_scopes_held(ctx.principal, args.scopes, "create")
    parent = await ctx.keys.of(ctx.principal)
    new = await ctx.keys.create(ctx.principal.user_id, args.name, args.scopes, args.expires_in_days, parent=parent)
    shown = _key(new.key)
    return NewApiKeyEnvelope(api_key=NewApiKey(
        id=shown.id, name=shown.name, key=new.secret, prefix=shown.prefix, scopes=shown.scopes,
        created_at=shown.created_at, expires_at=shown.expires_at, parent_id=shown.parent_id,
    ))


@registry.capability(scope="api-keys:write", title="Revoke an API key", destructive=True, idempotent=True)
async def api_keys_revoke(ctx: Context, args: ApiKeyRef) -> ApiKeyEnvelope:
    """Revoke one of your API keys and every key made with it, from the next request on.

    Only keys whose scopes you hold.
    """
    key = await ctx.keys.get(ctx.principal.user_id, args.key_id)
    if key is None:
        raise NotFound("API key not found")
    require_scopes_held(ctx.principal, key.scopes, "revoke")
    revoked = await ctx.keys.revoke(ctx.principal.user_id, args.key_id)
    if revoked is None:  # revoked meanwhile, by another request
        raise NotFound("API key not found")
    return ApiKeyEnvelope(api_key=_key(revoked))
