"""The scope matrix: on every door, each capability needs its scope, and tools/list shows only what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

import mcp_server.capabilities  # noqa: F401  (fills the registry)
from mcp_server.auth.principal import grants
from mcp_server.registry import Capability, registry
from rest_bridge.routes import ROUTES
from tests.doors import DOORS, McpDoor, open_door
from tests.gateway import Gateway, mint_key

REST_TOOLS = {route.tool for route in ROUTES}


def dummy_args(capability: Capability) -> dict[str, str]:
    """Path parameters for the REST door; the scope check comes before validation and lookup."""
    route = next((r for r in ROUTES if r.tool == capability.name), None)
    return dict.fromkeys(route.path_params, "x_missing") if route else {}


@pytest.fixture(scope="module")
def keys_by_scope(data_dir: Path) -> dict[str, str]:
    """One single-scope key per scope any capability needs, of one user (not an admin)."""
    scopes = sorted({c.scope for c in registry.list()})
    return {scope: mint_key(data_dir, user="matrix@example.test", scopes=[scope]) for scope in scopes}


@pytest.mark.parametrize("kind", DOORS)
async def test_each_capability_needs_its_scope_on_every_door(kind: str, gateway: Gateway, stateless_gateway: Gateway,
                                                             data_dir: Path, keys_by_scope: dict[str, str]) -> None:
    capabilities = [c for c in registry.list() if kind != "rest" or c.name in REST_TOOLS]
    for scope, key in keys_by_scope.items():
        async with open_door(kind, url=gateway.url, stateless_url=stateless_gateway.url, key=key,
                             data_dir=data_dir) as door:
            if isinstance(door, McpDoor):
                listed = {tool.name for tool in (await door.client.list_tools()).tools}
                offered = {c.name for c in registry.list() if grants([scope], c.scope) and not c.admin}
                assert listed == offered, (kind, scope)  # admin-only tools are not offered to others
            for capability in capabilities:
                allowed = grants([scope], capability.scope)
                outcome = await door.call(capability.name, dummy_args(capability))
                scope_refusal = outcome.error_status == 403 and "scope" in outcome.body["message"]
                assert scope_refusal is not allowed, (kind, capability.name, scope, outcome.body)
