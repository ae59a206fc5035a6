"""KUBEGATE_TOOLSETS: only the chosen toolsets are served, on MCP (stdio and HTTP) and REST."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import mcp_server.capabilities  # noqa: F401  (fills the registry)
from mcp_server.errors import ValidationFailed
from mcp_server.registry import registry
from tests.doors import McpDoor, open_door
from tests.gateway import Gateway, free_port, kubegate_env, mint_key

CHOSEN = {"KUBEGATE_TOOLSETS": "tasks, templates"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("toolsets")


@pytest.fixture(scope="module")
def gateway(data_dir: Path) -> Iterator[Gateway]:
    gw = Gateway(data_dir, env_extra=CHOSEN).start()
    yield gw
    gw.stop()


def test_every_capability_belongs_to_the_toolset_its_name_begins_with() -> None:
    toolsets = registry.toolsets()
    assert {"api_keys", "audit", "tasks", "templates", "workflows"} <= set(toolsets)
    assert all(c.name.startswith(f"{c.toolset}_") for c in registry.list())
    assert {c.name for c in registry.select("sandboxes").list()} >= {"sandboxes_read_file", "sandboxes_write_file"}
    picked = registry.select("api-keys,audit")  # a dash is as good as an underscore
    assert {c.toolset for c in picked.list()} == {"api_keys", "audit"}
    assert registry.select("") is registry and registry.select("all") is registry


def test_an_unknown_toolset_names_the_valid_ones() -> None:
    with pytest.raises(ValidationFailed) as refused:
        registry.select("tasks,deploy")
    assert "deploy" in refused.value.message and all(t in refused.value.message for t in registry.toolsets())


@pytest.mark.parametrize("command", ["serve", "stdio"])
def test_an_unknown_toolset_stops_the_start_in_one_line(tmp_path: Path, command: str) -> None:
    env = kubegate_env(tmp_path, {"KUBEGATE_TOOLSETS": "tasks,nope", "KUBEGATE_PORT": str(free_port())})
    done = subprocess.run([sys.executable, "-m", "mcp_server.cli", command], env=env, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "kubegate: KUBEGATE_TOOLSETS: unknown toolset(s) nope; valid: all, " + ", ".join(registry.toolsets()))


@pytest.mark.parametrize("kind", ["mcp-http-session", "mcp-http-2026", "mcp-stdio"])
async def test_mcp_lists_and_calls_only_the_chosen_toolsets(gateway: Gateway, data_dir: Path, kind: str) -> None:
    key = mint_key(data_dir)  # the operator, who would see every tool
    async with open_door(kind, url=gateway.url, stateless_url=gateway.url, key=key, data_dir=data_dir,
                         env=CHOSEN) as door:
        assert isinstance(door, McpDoor)
        names = {t.name for t in (await door.client.list_tools()).tools}
        assert names == {c.name for c in registry.list() if c.toolset in ("tasks", "templates")}
        assert (await door.call("templates_list")).ok
        with pytest.raises(Exception, match="Unknown tool"):
            await door.client.call_tool("workflows_list", {})
        resources = {r.name for r in (await door.client.list_resource_templates()).resource_templates}
        assert resources == {"task-logs"}


async def test_rest_answers_404_for_the_toolsets_left_out(gateway: Gateway, data_dir: Path) -> None:
    auth = {"Authorization": f"Bearer {mint_key(data_dir)}"}
    async with httpx.AsyncClient(base_url=gateway.url, headers=auth) as http:
        assert (await http.get("/api/tasks")).status_code == 200
        assert (await http.get("/api/templates")).status_code == 200
        for method, path in (("GET", "/api/workflows"), ("POST", "/api/workflows"), ("GET", "/api/api-keys"),
                             ("DELETE", "/api/api-keys/key_x"), ("GET", "/api/audit")):
            response = await http.request(method, path, json={} if method == "POST" else None)
            assert response.status_code == 404, (method, path)
            assert response.json() == {"error": "resource_not_found", "status": 404,
                                       "message": f"No route for {method} {path}"}
        shorthand = await http.post("/api/mcp", json={"method": "workflows/list", "params": {}})
        assert shorthand.status_code == 404 and shorthand.json()["error"] == "resource_not_found"
        paths = (await http.get("/openapi.json")).json()["paths"]
    assert "/api/tasks" in paths and "/api/templates/{name}" in paths
    assert "/api/workflows" not in paths and "/api/api-keys" not in paths
