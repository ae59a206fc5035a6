"""Every file in examples/ is exercised: the MCP client configs and the curl walkthrough."""

from __future__ import annotations

import json
import os
import shutil
import string
import subprocess
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from tests.gateway import Gateway, kubegate_env

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load(name: str, variables: dict[str, str]) -> dict[str, Any]:
    text = string.Template((EXAMPLES / name).read_text()).substitute(variables)
    server: dict[str, Any] = json.loads(text)["mcpServers"]["kubegate"]
    return server


async def _assert_usable(client: Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert {"api_keys_list", "tasks_create"} <= set(tools)
    assert tools["tasks_create"].input_schema["properties"]["command"]
    assert tools["api_keys_list"].output_schema is not None
    result = await client.call_tool("api_keys_list", {})
    assert not result.is_error and "apiKeys" in (result.structured_content or {})


async def test_stdio_config_connects(data_dir: Path, api_key: str, runtime_env: dict[str, str]) -> None:
    server = _load("mcp-stdio.json", {"KUBEGATE_DATA_DIR": str(data_dir), "KUBEGATE_API_KEY": api_key})
    assert shutil.which(server["command"]), "the kubegate console script is installed"
    params = StdioServerParameters(command=server["command"], args=server["args"],
                                   env=kubegate_env(data_dir, {**runtime_env, **server["env"]}))
    async with Client(params, mode="legacy") as client:
        await _assert_usable(client)


async def test_http_config_connects(gateway: Gateway, api_key: str) -> None:
    server = _load("mcp-http.json", {"KUBEGATE_URL": gateway.url, "KUBEGATE_API_KEY": api_key})
    assert server["type"] == "http"
    async with httpx2.AsyncClient(headers=server["headers"]) as http:
        async with Client(streamable_http_client(server["url"], http_client=http), mode="legacy") as client:
            await _assert_usable(client)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_walkthrough(gateway: Gateway, api_key: str) -> None:
    env = {**os.environ, "KUBEGATE_URL": gateway.url, "KUBEGATE_API_KEY": api_key}
    done = subprocess.run(["bash", str(EXAMPLES / "api-keys.sh")], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "HTTP 401" in done.stdout
