"""Deployment templates: admin-defined apps that deployments start from.

Anyone with ``deployments:read`` lists and reads them; only administrators (the one
``Policy.is_admin`` rule) create, change or delete them. Secret env values are stored for deployments
to use and never shown back: not in answers, not in errors, not in logs.
"""

from __future__ import annotations

from mcp_server.context import Context
from mcp_server.engine.templates import apply_fields, new_spec
from mcp_server.errors import NotFound
from mcp_server.ids import iso
from mcp_server.models.base import NoArgs
from mcp_server.models.templates import (
    EnvVarOut,
    Template,
    TemplateCreate,
    TemplateEnvelope,
    TemplateList,
    TemplateRef,
    TemplateUpdate,
)
from mcp_server.registry import registry
from mcp_server.store.templates import Template as Stored
from mcp_server.store.templates import TemplateStore


def template_model(stored: Stored) -> Template:
    spec = stored.spec
    return Template(
        name=spec.name, display_name=spec.display_name, description=spec.description, category=spec.category,
        image=spec.image, port=spec.port, cpu_request=spec.cpu_request, cpu_limit=spec.cpu_limit,
        memory_request=spec.memory_request, memory_limit=spec.memory_limit,
        health_check_path=spec.health_check_path, enabled=spec.enabled,
        env_vars=[EnvVarOut(name=e.name, value=None if e.secret else e.value, secret=e.secret) for e in spec.env],
        command=list(spec.command) if spec.command is not None else None, network=spec.network,
        version=stored.version,
        source=stored.source, created_at=iso(stored.created_at) or "", updated_at=iso(stored.updated_at) or "",
    )


def _require_admin(ctx: Context, action: str) -> None:
    ctx.policy.require_admin(ctx.principal, f"{action} templates")


async def _current(store: TemplateStore, name: str) -> Stored:
    found = await store.get(name)
    if found is None:
        raise NotFound(f"Template '{name}' not found; templates_list shows the available ones")
    return found


@registry.capability(scope="deployments:read", title="List templates", read_only=True, idempotent=True)
async def templates_list(ctx: Context, args: NoArgs) -> TemplateList:
    """List deployment templates (apps to deploy), by name."""
    return TemplateList(templates=[template_model(t) for t in await ctx.templates.list()])


@registry.capability(scope="deployments:read", title="Get a template", read_only=True, idempotent=True)
async def templates_get(ctx: Context, args: TemplateRef) -> TemplateEnvelope:
    """A deployment template. Secret env values are never shown."""
    return TemplateEnvelope(template=template_model(await _current(ctx.templates, args.name)))


@registry.capability(scope="deployments:write", title="Create a template", admin=True)
async def templates_create(ctx: Context, args: TemplateCreate) -> TemplateEnvelope:
    """Create a deployment template. Admins only."""
    _require_admin(ctx, "create")
    stored = await ctx.templates.create(new_spec(args), "api")
    return TemplateEnvelope(template=template_model(stored))


@registry.capability(scope="deployments:write", title="Update a template", idempotent=True, admin=True)
async def templates_update(ctx: Context, args: TemplateUpdate) -> TemplateEnvelope:
    """Change the given fields of a template; its version grows by one. Admins only."""
    _require_admin(ctx, "update")
    store = ctx.templates
    spec = apply_fields((await _current(store, args.name)).spec, args)
    stored = await store.update(spec)
    if stored is None:  # deleted between the read and the write
        raise NotFound(f"Template '{args.name}' not found")
    return TemplateEnvelope(template=template_model(stored))


@registry.capability(scope="deployments:write", title="Delete a template", destructive=True, idempotent=True,
                     admin=True)
async def templates_delete(ctx: Context, args: TemplateRef) -> TemplateEnvelope:
    """Delete a template. Admins only."""
    _require_admin(ctx, "delete")
    stored = await ctx.templates.delete(args.name)
    if stored is None:
        raise NotFound(f"Template '{args.name}' not found")
    return TemplateEnvelope(template=template_model(stored))
