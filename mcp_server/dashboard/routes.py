"""The dashboard's routes: the page at ``/``, its assets, its public config, examples and ``/api/events``.

The page is static (HTML, CSS and one script, no build step, nothing from a CDN) and holds no
secret: it learns who is logged in from ``/auth/me`` and reads everything else through the
documented REST routes with the session cookie, echoing the ``csrf_token`` cookie on writes.
``/dashboard/config.json`` says which login is on and which kinds of object exist.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from mcp_server import __version__
from mcp_server.auth.middleware import Authenticator
from mcp_server.auth.oauth import login_configured
from mcp_server.auth.principal import Principal
from mcp_server.dashboard.events import EventStream
from mcp_server.dashboard.kinds import discover, examples
from mcp_server.errors import NotFound
from mcp_server.http import error_response
from mcp_server.registry import Registry
from mcp_server.services import Services

_ASSETS = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8"}
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
"""``examples/`` of a checkout (the page offers them as starting points when it is there)."""
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "Cache-Control": "no-cache",
}


def _asset(name: str) -> bytes:
    return resources.files("mcp_server.dashboard").joinpath("static", name).read_bytes()


def dashboard_routes(registry: Registry, services: Services, examples_dir: Path = EXAMPLES_DIR) -> list[BaseRoute]:
    settings = services.settings
    kinds = discover(registry)
    found = examples(examples_dir, kinds)
    page = _asset("index.html")
    assets = {name: _asset(name) for name in _ASSETS}
    config = {
        "version": __version__,
        "login": {"oauth": login_configured(settings), "dev": settings.dev_login},
        "kinds": [k.to_json() for k in kinds],
        "examples": [{"name": name, "kind": kind} for name, (kind, _) in found.items()],
    }
    authenticate = Authenticator(services.keys, services.sessions)

    async def still_valid(request: Request, principal: Principal) -> bool:
        now = await authenticate(request.scope)
        return now is not None and now.user_id == principal.user_id

    async def index(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in assets:
            return error_response(NotFound(f"No dashboard asset {name!r}"))
        return Response(assets[name], media_type=_ASSETS[name], headers={"X-Content-Type-Options": "nosniff"})

    async def public_config(request: Request) -> Response:
        return JSONResponse(config)

    async def example(request: Request) -> Response:
        entry = found.get(request.path_params["name"])
        if entry is None:
            return error_response(NotFound("No such example; /dashboard/config.json lists them"))
        return Response(entry[1], media_type="application/json")

    return [
        Route("/", index, methods=["GET"]),
        Route("/dashboard/assets/{name}", asset, methods=["GET"]),
        Route("/dashboard/config.json", public_config, methods=["GET"]),
        Route("/dashboard/examples/{name}", example, methods=["GET"]),
        Route("/api/events", EventStream(services, registry, kinds, still_valid).endpoint, methods=["GET"]),
    ]
