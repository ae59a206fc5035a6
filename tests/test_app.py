"""The HTTP app in-process on a real uvicorn: an unexpected failure is a bare 500, never a traceback."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest
import uvicorn

from mcp_server.app import build_app, open_services
from mcp_server.config import Settings
from mcp_server.context import Context
from mcp_server.models.base import NoArgs
from mcp_server.registry import Registry
from rest_bridge import app as rest_app
from rest_bridge import routes as rest_routes
from tests.gateway import free_port


class Kaput(NoArgs):
    pass


@pytest.fixture
async def crashing_gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[str, str]]:
    reg = Registry()

    @reg.capability(scope="tasks:read", title="Explode")
    async def tasks_list(ctx: Context, args: NoArgs) -> Kaput:
        raise RuntimeError("secret internals /etc/passwd")

    monkeypatch.setattr(rest_routes, "ROUTES", (rest_routes.RestRoute("GET", "/api/tasks", "tasks_list"),))
    monkeypatch.setattr(rest_app, "ROUTES", rest_routes.ROUTES)
    port = free_port()
    settings = Settings(data_dir=tmp_path, port=port)
    services = await open_services(settings, engine=False)
    operator_key = (await services.keys.create((await services.operator()).user_id, "k", ["*"], None)).secret
    from rest_bridge import docs

    monkeypatch.setattr(docs, "build_openapi", lambda registry, url: {})
    server = uvicorn.Server(uvicorn.Config(build_app(services, reg), host="127.0.0.1", port=port, log_level="error"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(10):
            while not server.started:
                await anyio.sleep(0.01)
        yield f"http://127.0.0.1:{port}", operator_key
        server.should_exit = True
    await services.close()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


async def test_internal_error_is_a_bare_500(crashing_gateway: tuple[str, str]) -> None:
    url, key = crashing_gateway
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}) as http:
        response = await http.get("/api/tasks")
        shorthand = await http.post("/api/mcp", json={"method": "tasks/list", "params": {}})
    for r in (response, shorthand):
        assert r.status_code == 500
        assert r.json() == {"error": "internal_error", "message": "Internal server error", "status": 500}
        assert "secret internals" not in r.text and "Traceback" not in r.text
