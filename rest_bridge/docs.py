"""``/openapi.json`` and ``/docs``: the generated document and a local, CDN-free viewer."""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from mcp_server.config import Settings
from mcp_server.registry import Registry
from rest_bridge.openapi import build_openapi

_ASSETS = {"docs.js": "text/javascript", "docs.css": "text/css"}


def _asset(name: str) -> bytes:
    return resources.files("rest_bridge").joinpath("static", name).read_bytes()


def docs_routes(registry: Registry, settings: Settings) -> list[BaseRoute]:
    page = _asset("docs.html")
    assets = {name: _asset(name) for name in _ASSETS}

    @functools.cache
    def document() -> dict[str, Any]:  # on first request, not at start: ~0.1 s of pydantic schema work
        return build_openapi(registry, settings.public_url)

    async def openapi(request: Request) -> Response:
        return JSONResponse(document())

    async def docs(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8",
                        headers={"Content-Security-Policy": "default-src 'self'"})

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in assets:
            return Response(status_code=404)
        return Response(assets[name], media_type=_ASSETS[name])

    return [
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        Route("/docs/assets/{name}", asset, methods=["GET"]),
    ]
