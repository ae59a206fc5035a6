"""The route table, the registry and the OpenAPI document agree with each other and the spec."""

from __future__ import annotations

import httpx

import mcp_server.capabilities  # noqa: F401
from mcp_server.auth.principal import valid_scope
from mcp_server.registry import registry
from rest_bridge.routes import ROUTES
from tests.gateway import Gateway

DOCUMENTED = {
    ("GET", "/api/api-keys"), ("POST", "/api/api-keys"), ("DELETE", "/api/api-keys/{keyId}"),
    ("GET", "/api/tasks"), ("POST", "/api/tasks"), ("GET", "/api/tasks/{taskId}"), ("DELETE", "/api/tasks/{taskId}"),
}


def test_every_documented_endpoint_has_a_tool() -> None:
    routed = {(r.method, r.path): r.tool for r in ROUTES}
    missing = DOCUMENTED - set(routed)
    assert not missing, f"documented endpoints without a route: {missing}"
    for tool in routed.values():
        registry.get(tool)


def test_every_tool_is_routed_or_marked_mcp_only() -> None:
    routed = {r.tool for r in ROUTES}
    orphans = [c.name for c in registry.list() if c.name not in routed and not c.mcp_only]
    assert not orphans, f"tools neither routed nor MCP-only: {orphans}"
    assert not [c.name for c in registry.list() if c.name in routed and c.mcp_only]


def test_tool_names_are_resource_action() -> None:
    """``<resource>_<action>``; the resource is the toolset. Its scope is a known one, read for read-only tools
    (a resource may borrow another's scope: templates are read with deployments:read)."""
    for capability in registry.list():
        action = capability.name.removeprefix(f"{capability.toolset}_")
        assert action and action != capability.name, capability.name
        assert valid_scope(capability.scope) and ":" in capability.scope, capability.name
        assert capability.read_only == capability.scope.endswith(":read"), capability.name


async def test_openapi_document_covers_every_route(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        doc = (await http.get("/openapi.json")).json()
        docs_page = await http.get("/docs")
        script = await http.get("/docs/assets/docs.js")
    assert doc["openapi"].startswith("3.1")
    path_params = 0
    for route in ROUTES:
        operation = doc["paths"][route.path][route.method.lower()]
        assert operation["operationId"] == route.tool
        assert str(route.status) in operation["responses"]
        for name in route.path_params:
            assert any(p["name"] == name and p["in"] == "path" for p in operation["parameters"])
            path_params += 1
    assert path_params > 0, "the path parameter checks ran"
    assert docs_page.status_code == 200 and "/docs/assets/docs.js" in docs_page.text
    assert "http" not in docs_page.text.replace("http-equiv", ""), "no CDN: every asset is served locally"
    assert script.status_code == 200 and "openapi.json" in script.text
