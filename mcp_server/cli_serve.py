"""What ``kubegate serve`` says once its port is bound: where everything is and what to do first.

The banner is printed from uvicorn's start-up, after the listening socket exists, so a port
already in use never gets a banner that claims the gateway is up; that failure is one plain line.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

import uvicorn

from mcp_server import __version__
from mcp_server.config import Settings
from mcp_server.context import Context
from mcp_server.registry import registry
from mcp_server.services import Services


def runtime_line(settings: Settings) -> str:
    if settings.runtime == "kubernetes":
        where = settings.kubeconfig or "in-cluster config"
        return f"kubernetes (Jobs in namespaces {settings.namespace_prefix}*, {where})"
    from mcp_server.runtime.isolation import find_bwrap

    bwrap = find_bwrap(settings.isolation)
    isolation = f"bubblewrap ({bwrap})" if bwrap else "none: runs are NOT isolated from this host"
    return f"local processes; isolation: {isolation}"


def store_line(settings: Settings) -> str:
    if settings.database_url:
        return "PostgreSQL (KUBEGATE_DATABASE_URL)"  # never the URL: it may hold a password
    return f"SQLite {settings.db_path}"


class Banner:
    def __init__(self, services: Services, runs: str) -> None:
        self.services = services
        self.runs = runs

    async def text(self) -> str:
        settings = self.services.settings
        url = settings.public_url
        lines = [
            f"kubegate {__version__} listening on {url}",
            f"  runtime    {runtime_line(settings)}",
            f"  runs       {self.runs}",
            f"  store      {store_line(settings)}",
            f"  data dir   {settings.data_dir}",
            f"  dashboard  {url}/",
            f"  API docs   {url}/docs  (MCP endpoint {url}/api/mcp)",
        ]
        if not await self._operator_has_keys():
            lines.append(f"  first key  kubegate keys create --name me --data-dir {settings.data_dir}")
        return "\n".join(lines)

    async def _operator_has_keys(self) -> bool:
        context = Context.for_principal(await self.services.operator(), self.services.parts)
        listed = await registry.call("api_keys_list", context, {})
        return bool(listed.get("apiKeys"))


class BannerServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, banner: Banner) -> None:
        super().__init__(config)
        self.banner = banner

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        except SystemExit:
            cfg: Any = self.config
            raise SystemExit(f"kubegate: cannot listen on {cfg.host}:{cfg.port} (in use, or not an address "
                             "of this machine): set KUBEGATE_PORT or --port") from None
        if self.started:
            print(await self.banner.text(), file=sys.stderr, flush=True)
