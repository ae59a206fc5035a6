"""The registry served as an MCP server, over stdio and Streamable HTTP.

Tools are generated from the registry; a call runs the same handler as REST and answers its
JSON both as structured content and as text. A domain failure is a result with ``isError``
carrying the documented error JSON; an unknown tool is a JSON-RPC error (a protocol fault).

Who is calling comes from the transport, never from a global: over HTTP the auth middleware
put the principal in the request scope; over stdio the process acts as one fixed principal.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from starlette.types import Scope

from mcp_server import __version__
from mcp_server.auth.principal import Principal
from mcp_server.context import Context
from mcp_server.edge.calls import call, door_context
from mcp_server.edge.scope import require_principal
from mcp_server.errors import KubegateError, NotFound, Unauthorized
from mcp_server.models.schema import input_schema
from mcp_server.registry import Capability, Registry
from mcp_server.resources import ResourceSet
from mcp_server.services import Services

log = logging.getLogger(__name__)

PrincipalSource = Callable[[ServerRequestContext[Any, Any]], Awaitable[Principal]]
ValiditySource = Callable[[ServerRequestContext[Any, Any]], Awaitable[bool]]

_WORDS = {"api_keys": "API keys", "tasks": "one-off tasks", "workflows": "multi-step workflows (DAGs of steps)",
          "audit": "the audit log", "sandboxes": "sandboxes (long-lived isolated environments)",
          "templates": "deployment templates", "deployments": "deployments (long-running apps with a URL)"}


def instructions(registry: Registry) -> str:
    """What the server offers, generated from the registry so it names only what exists."""
    resources: dict[str, list[str]] = {}
    for capability in registry.list():
        resource = capability.toolset
        resources.setdefault(resource, []).append(capability.name.removeprefix(f"{resource}_"))
    offered = "; ".join(f"{_WORDS.get(r, r.replace('_', ' '))} ({', '.join(a)})" for r, a in resources.items())
    return ("kubegate runs work on Kubernetes (or this machine). Tools are named <resource>_<action>; "
            f"it offers {offered}. Create returns at once; follow long work with the *_wait tools.")


def tool_definition(capability: Capability) -> types.Tool:
    return types.Tool(
        name=capability.name,
        title=capability.title,
        description=capability.description,
        input_schema=input_schema(capability.input_model),
        output_schema=capability.output_model.model_json_schema(by_alias=True, mode="serialization"),
        annotations=types.ToolAnnotations(
            title=capability.title,
            read_only_hint=capability.read_only,
            destructive_hint=capability.destructive,
            idempotent_hint=capability.idempotent,
            open_world_hint=False,
        ),
    )


def error_result(error: KubegateError) -> types.CallToolResult:
    body = error.to_dict()
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=json.dumps(body))], structured_content=body, is_error=True
    )


def request_scope(ctx: ServerRequestContext[Any, Any]) -> Scope:
    scope = getattr(ctx.request, "scope", None)
    if scope is None:
        raise Unauthorized("Authentication required")
    return cast(Scope, scope)


def request_principal(ctx: ServerRequestContext[Any, Any]) -> Principal:
    """The principal the edge authenticated for this HTTP request."""
    return require_principal(request_scope(ctx))


class _Handlers:
    """The MCP request handlers, bound to one registry and one way of knowing the caller."""

    def __init__(self, services: Services, registry: Registry, principal_of: PrincipalSource,
                 still_valid: ValiditySource | None, door: str) -> None:
        self.services = services
        self.registry = registry
        self.principal_of = principal_of
        self.still_valid = still_valid
        self.door = door
        self.resources = ResourceSet(services, registry.toolsets())

    @functools.cached_property
    def tools(self) -> dict[str, tuple[Capability, types.Tool]]:
        """Generated once, on first use (not at start: ~0.1 s of pydantic work): a 2026-07-28 client's every
        call asks for its tool's input schema."""
        return {c.name: (c, tool_definition(c)) for c in self.registry.list()}

    def input_schema(self, name: str) -> dict[str, Any] | None:
        found = self.tools.get(name)
        return found[1].input_schema if found else None

    async def context(self, ctx: ServerRequestContext[Any, Any]) -> Context:
        principal = await self.principal_of(ctx)
        session = ctx.session

        async def progress(done: float, total: float | None, message: str | None) -> None:
            await session.report_progress(done, total, message)

        async def send_log(level: str, message: str) -> None:
            await session.send_log_message(level, message, logger="kubegate")  # type: ignore[arg-type]

        return door_context(self.services, principal, progress=progress, log=send_log)

    async def list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        principal = await self.principal_of(ctx)
        admin = self.services.parts.policy.is_admin(principal)
        allowed = [tool for capability, tool in self.tools.values()
                   if principal.allows(capability.scope) and (admin or not capability.admin)]
        return types.ListToolsResult(tools=allowed)

    async def call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        try:
            capability = self.registry.get(params.name)
        except NotFound as exc:
            raise MCPError(types.INVALID_PARAMS, exc.message) from None
        valid = self.still_valid
        try:
            body = await call(self.registry, capability.name, await self.context(ctx), dict(params.arguments or {}),
                              door=self.door, still_valid=(lambda: valid(ctx)) if valid else None)
        except KubegateError as exc:
            return error_result(exc)
        except Exception:
            log.exception("tool %s failed", capability.name)
            return error_result(KubegateError())
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json.dumps(body))], structured_content=body
        )

    async def list_resource_templates(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(resource_templates=self.resources.templates())

    async def list_resources(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=await self.resources.listing(await self.principal_of(ctx)))

    async def read_resource(
        self, ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        try:
            text, mime = await self.resources.read(await self.principal_of(ctx), str(params.uri))
        except KubegateError as exc:
            raise MCPError(types.INVALID_PARAMS, exc.message) from None
        return types.ReadResourceResult(
            contents=[types.TextResourceContents(uri=str(params.uri), mime_type=mime, text=text)]
        )


def build_server(services: Services, registry: Registry, principal_of: PrincipalSource, *,
                 still_valid: ValiditySource | None = None, door: str = "mcp") -> Server[Any]:
    """An MCP server whose tools and resources are the registry's capabilities.

    ``principal_of`` says who makes a request; ``still_valid`` tells a long call (a wait)
    whether its credential still holds, so revoking it ends the call with 401.
    """
    handlers = _Handlers(services, registry, principal_of, still_valid, door)
    return Server(
        "kubegate",
        version=__version__,
        title="kubegate",
        instructions=instructions(registry),
        get_tool_input_schema=handlers.input_schema,
        on_list_tools=handlers.list_tools,
        on_call_tool=handlers.call_tool,
        on_list_resources=handlers.list_resources,
        on_list_resource_templates=handlers.list_resource_templates,
        on_read_resource=handlers.read_resource,
    )
