"""The baseline: a bare MCP SDK server with one async echo tool over Streamable HTTP.

    python bench/_bare_mcp.py PORT [--freeze] [--sessions]

Stateless by default; ``--sessions`` serves with sessions and SSE answers (the SDK's default
and kubegate's).

``--freeze`` gives it the start-up tuning ``kubegate serve`` applies (``gc.freeze()`` after
start-up), so the benchmark can also show the overhead with that tuning on both sides.
"""

from __future__ import annotations

import gc
import logging
import sys

import uvicorn
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

server = MCPServer("bare")


@server.tool()
async def echo(text: str) -> str:
    """Echo the text back."""
    return text


def main(port: int, freeze: bool, sessions: bool) -> None:
    # Same logging as kubegate serve: the SDK's per-request INFO lines off on both sides.
    logging.getLogger("mcp").setLevel(logging.WARNING)
    mcp_app = server.streamable_http_app(streamable_http_path="/mcp", stateless_http=not sessions)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    mcp_app.router.routes.append(Route("/healthz", healthz))
    app: Starlette = mcp_app
    if freeze:
        gc.collect()
        gc.freeze()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main(int(sys.argv[1]), "--freeze" in sys.argv[2:], "--sessions" in sys.argv[2:])
