"""REST routes generated from ``routes.ROUTES`` and the registry.

The bridge calls the capability through the registry, exactly as MCP does, so scope checks,
validation and typed errors are shared; it only decides where arguments come from and which
HTTP status a success gets.

Each path is a plain ASGI app (``RestPath``), not a Starlette ``Request`` endpoint: the
request/response wrapper (a ``Request`` object, two nested ``send`` wrappers, an exception
handler lookup per request) cost more than the tool's own read on ``GET /api/tasks``
(``bench/rest_overhead.py``). A success leaves as one head and one body, as before.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from mcp_server.auth.audit import ACTION_KEY
from mcp_server.edge.calls import call, door_context
from mcp_server.edge.scope import require_principal
from mcp_server.errors import BadRequest, KubegateError
from mcp_server.http import dumps, error_response, parse_json
from mcp_server.registry import Registry
from mcp_server.services import Services
from rest_bridge.routes import ROUTES, RestRoute

_JSON = (b"content-type", b"application/json")


def _query(scope: Scope) -> dict[str, Any]:
    args: dict[str, Any] = {}
    query: bytes = scope["query_string"]
    if query:  # most reads have none: skip the parse
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if name in args:
                args[name] = [*args[name], value] if isinstance(args[name], list) else [args[name], value]
            else:
                args[name] = value
    return args


async def _body(scope: Scope, receive: Receive) -> dict[str, Any]:
    raw = await Request(scope, receive).body()
    if not raw.strip():
        return {}
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise BadRequest("The JSON body must be an object")
    return dict(body)


class RestEndpoint:
    """One route of the table: its arguments from the query or the body, then the tool."""

    def __init__(self, route: RestRoute, registry: Registry, services: Services) -> None:
        self.route = route
        self.registry = registry
        self.services = services
        self.strict = route.source == "body"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.route
        scope[ACTION_KEY] = route.tool  # names the action in the audit log
        try:
            principal = require_principal(scope)
            args = _query(scope) if route.source == "query" else await _body(scope, receive)
            args.update(scope.get("path_params") or {})
            body = await call(self.registry, route.tool, door_context(self.services, principal), args, door="rest",
                              strict=self.strict)
        except KubegateError as exc:
            await error_response(exc)(scope, receive, send)
            return
        content = dumps(body)
        await send({"type": "http.response.start", "status": route.status,
                    "headers": [(b"content-length", str(len(content)).encode()), _JSON]})
        await send({"type": "http.response.body", "body": content})


class RestPath:
    """Every method of one path, as an ASGI app; HEAD is answered as GET."""

    __name__ = "dispatch"
    """What the audit log names a request refused before any endpoint ran (405)."""

    def __init__(self, endpoints: dict[str, RestEndpoint]) -> None:
        self.endpoints = endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = "GET" if scope["method"] == "HEAD" else scope["method"]
        await self.endpoints[method](scope, receive, send)


def rest_routes(registry: Registry, services: Services) -> list[BaseRoute]:
    """One Starlette route per path, dispatching each method to its tool.

    One route per path (not per method) so that a 405 names every allowed method in ``Allow``.
    """
    by_path: dict[str, dict[str, RestEndpoint]] = {}
    for route in ROUTES:
        if route.tool not in registry:  # its toolset is not served (KUBEGATE_TOOLSETS): no route, so 404
            continue
        by_path.setdefault(route.path, {})[route.method] = RestEndpoint(route, registry, services)
    return [Route(path, RestPath(endpoints), methods=list(endpoints)) for path, endpoints in by_path.items()]
