"""The four doors into kubegate, driven the same way by the end-to-end tests.

Each door is a real connection: REST through httpx, the spec's shorthand POST to /api/mcp,
the SDK's MCP client over Streamable HTTP (handshake era, session or stateless gateway, and the
2026-07-28 protocol), and the SDK's MCP client over stdio to a ``kubegate stdio`` subprocess.
``call(tool, args)`` answers an ``Outcome``: whether it succeeded and the JSON body, which is
the REST body on success and the documented error JSON on failure.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import httpx2
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import LoggingMessageNotificationParams

from rest_bridge.routes import ROUTES
from tests.gateway import kubegate_env


@dataclass
class Outcome:
    ok: bool
    body: dict[str, Any]
    http_status: int | None = None

    @property
    def error_status(self) -> int | None:
        return None if self.ok else int(self.body["status"])


class Door(Protocol):
    name: str

    async def call(self, tool: str, args: dict[str, Any] | None = None) -> Outcome: ...


class RestDoor:
    name = "rest"

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def call(self, tool: str, args: dict[str, Any] | None = None) -> Outcome:
        """Call ``tool`` on its documented route; MCP-only tools (``*_wait``) go through the shorthand."""
        args = dict(args or {})
        route = next((r for r in ROUTES if r.tool == tool), None)
        if route is None:
            return await ShorthandDoor(self.client).call(tool, args)
        path = route.path
        for name in route.path_params:
            path = path.replace("{" + name + "}", str(args.pop(name)))
        if route.source == "body":
            response = await self.client.request(route.method, path, json=args)
        else:
            response = await self.client.request(route.method, path, params=args)
        return Outcome(ok=response.is_success, body=response.json(), http_status=response.status_code)


class ShorthandDoor:
    name = "shorthand"

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def call(self, tool: str, args: dict[str, Any] | None = None) -> Outcome:
        resource, _, action = tool.rpartition("_")
        method = f"{resource.replace('_', '-')}/{action}"
        response = await self.client.post("/api/mcp", json={"method": method, "params": args or {}})
        body = response.json()
        return Outcome(ok=response.is_success, body=body.get("result", body), http_status=response.status_code)


class McpDoor:
    def __init__(self, name: str, client: Client, logs: list[str]) -> None:
        self.name = name
        self.client = client
        self.logs = logs
        """Log messages the server sent on this connection."""

    async def call(self, tool: str, args: dict[str, Any] | None = None) -> Outcome:
        result = await self.client.call_tool(tool, args or {})
        body = result.structured_content
        if body is None:
            body = json.loads(result.content[0].text)  # type: ignore[union-attr]
        assert json.loads(result.content[0].text) == body  # type: ignore[union-attr]
        return Outcome(ok=not result.is_error, body=body)


DOORS = ("rest", "shorthand", "mcp-http-session", "mcp-http-stateless", "mcp-http-2026", "mcp-stdio")
MCP_DOORS = tuple(door for door in DOORS if door.startswith("mcp-"))


@asynccontextmanager
async def open_door(kind: str, *, url: str, stateless_url: str, key: str, data_dir: Path,
                    env: dict[str, str] | None = None) -> AsyncIterator[Door]:
    headers = {"Authorization": f"Bearer {key}"}
    logs: list[str] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        logs.append(str(params.data))

    async with AsyncExitStack() as stack:
        if kind in ("rest", "shorthand"):
            client = await stack.enter_async_context(httpx.AsyncClient(base_url=url, headers=headers, timeout=60))
            yield RestDoor(client) if kind == "rest" else ShorthandDoor(client)
            return
        if kind == "mcp-stdio":
            params = StdioServerParameters(
                command=sys.executable, args=["-m", "mcp_server.cli", "stdio"],
                env=kubegate_env(data_dir, {**(env or {}), "KUBEGATE_API_KEY": key}),
            )
            mcp = await stack.enter_async_context(Client(params, mode="legacy", logging_callback=on_log))
        else:
            http = await stack.enter_async_context(httpx2.AsyncClient(headers=headers, timeout=60))
            target = stateless_url if kind == "mcp-http-stateless" else url
            mode = "2026-07-28" if kind == "mcp-http-2026" else "legacy"
            transport = streamable_http_client(f"{target}/api/mcp", http_client=http)
            mcp = await stack.enter_async_context(
                Client(transport, mode=mode, logging_callback=on_log, log_level="info")
            )
        yield McpDoor(kind, mcp, logs)
