"""Every file in examples/ is exercised: the MCP client configs, the curl walkthroughs and the SDK script."""

from __future__ import annotations

import json
import os
import shutil
import string
import subprocess
import sys
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


def _walkthrough(name: str, gateway: Gateway, api_key: str) -> str:
    env = {**os.environ, "KUBEGATE_URL": gateway.url, "KUBEGATE_API_KEY": api_key}
    done = subprocess.run(["bash", str(EXAMPLES / name)], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_tasks_walkthrough(gateway: Gateway, api_key: str) -> None:
    out = _walkthrough("tasks.sh", gateway, api_key)
    assert "status: completed, exit code: 0, output: greeted" in out and "hello from kubegate" in out
    assert "after delete: HTTP 404" in out


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_workflows_walkthrough(gateway: Gateway, api_key: str) -> None:
    out = _walkthrough("workflows.sh", gateway, api_key)
    assert ": completed" in out and "deleted" in out
    assert [line.split()[:2] for line in out.splitlines() if line.startswith("  ")] == [
        ["build", "completed"], ["test", "completed"], ["deploy", "completed"]]


def test_the_sdk_script_runs_a_workflow_and_prints_its_steps(gateway: Gateway, api_key: str) -> None:
    env = {**os.environ, "KUBEGATE_URL": gateway.url, "KUBEGATE_API_KEY": api_key}
    done = subprocess.run([sys.executable, str(EXAMPLES / "run_workflow.py")], env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("workflow workflow_") and lines[0].endswith("(build-test-deploy): completed")
    assert [line.split()[:2] for line in lines[1:]] == [["build", "completed"], ["test", "completed"],
                                                       ["deploy", "completed"]]
    assert "output='deployed myapp-1.0.0.tar" in lines[3]
    assert "3/3 steps completed" in done.stderr  # the progress notifications reached the script


def test_every_example_is_exercised_by_a_test() -> None:
    sources = "".join(p.read_text() for p in Path(__file__).resolve().parents[1].rglob("test_*.py"))
    # Files named only inside other examples count through them (hello-task.json is tasks.sh's body).
    sources += "".join(p.read_text() for p in EXAMPLES.glob("*.sh"))
    missing = [p.name for p in EXAMPLES.iterdir() if p.name != "README.md" and p.name not in sources]
    assert missing == []
