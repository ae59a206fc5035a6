"""REST routes generated from ``routes.ROUTES`` and the registry.

The bridge calls the capability through the registry, exactly as MCP does, so scope checks,
validation and typed errors are shared; it only decides where arguments come from and which
HTTP status a success gets.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mcp_server.auth.audit import ACTION_KEY
from mcp_server.edge.calls import call, door_context
from mcp_server.edge.scope import require_principal
from mcp_server.errors import BadRequest, KubegateError
from mcp_server.http import dumps, error_response, parse_json
from mcp_server.registry import Registry
from mcp_server.services import Services
from rest_bridge.routes import ROUTES, RestRoute


async def _arguments(request: Request, route: RestRoute) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if route.source == "query":
        query: bytes = request.scope["query_string"]
        if query:  # most reads have none: skip the parse
            for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
                if name in args:
                    args[name] = [*args[name], value] if isinstance(args[name], list) else [args[name], value]
                else:
                    args[name] = value
    else:
        raw = await request.body()
        if raw.strip():
            body = parse_json(raw)
            if not isinstance(body, dict):
                raise BadRequest("The JSON body must be an object")
            args.update(body)
    args.update(request.path_params)
    return args


def _endpoint(route: RestRoute, registry: Registry, services: Services) -> Any:
    async def endpoint(request: Request) -> Response:
        request.scope[ACTION_KEY] = route.tool  # names the action in the audit log
        try:
            principal = require_principal(request.scope)
            args = await _arguments(request, route)
            body = await call(registry, route.tool, door_context(services, principal), args, door="rest",
                              strict=route.source == "body")
        except KubegateError as exc:
            return error_response(exc)
        return Response(dumps(body), status_code=route.status, media_type="application/json")

    endpoint.__name__ = route.tool
    return endpoint


def rest_routes(registry: Registry, services: Services) -> list[BaseRoute]:
    """One Starlette route per path, dispatching each method to its tool.

    One route per path (not per method) so that a 405 names every allowed method in ``Allow``.
    """
    by_path: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        if route.tool not in registry:  # its toolset is not served (KUBEGATE_TOOLSETS): no route, so 404
            continue
        by_path.setdefault(route.path, {})[route.method] = _endpoint(route, registry, services)
    out: list[BaseRoute] = []
    for path, endpoints in by_path.items():
        async def dispatch(request: Request, endpoints: dict[str, Any] = endpoints) -> Response:
            method = "GET" if request.method == "HEAD" else request.method
            response: Response = await endpoints[method](request)
            return response

        out.append(Route(path, dispatch, methods=list(endpoints)))
    return out
