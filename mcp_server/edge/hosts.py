"""DNS-rebinding defence for every door: ``Host`` and ``Origin`` must name this gateway.

The MCP SDK checks these on JSON-RPC requests; the edge checks them first, on every path under
``/api`` (REST, the shorthand and JSON-RPC alike), so a page on a foreign origin that rebinds
its name to the gateway's address is refused the same way on each door.
"""

from __future__ import annotations

from ipaddress import ip_address

from starlette.types import Scope

from mcp_server.config import Settings
from mcp_server.edge.scope import header
from mcp_server.errors import Forbidden, KubegateError, MisdirectedRequest


def allowed(settings: Settings) -> tuple[list[str], list[str]]:
    """Hosts and origins: the public URL's, plus loopback aliases when bound to loopback.

    A bare loopback name (``127.0.0.1`` without a port) is allowed too: a rebinding page can
    only make a browser send its own, foreign, host name.
    """
    hosts = [settings.public_host]
    origins = [settings.public_origin]
    try:
        loopback = ip_address(settings.host).is_loopback
    except ValueError:
        loopback = settings.host == "localhost"
    if loopback:
        for name in ("127.0.0.1", "localhost", "[::1]"):
            hosts += [f"{name}:{settings.port}", name]
            origins.append(f"http://{name}:{settings.port}")
    return hosts, origins


class HostGuard:
    def __init__(self, settings: Settings) -> None:
        hosts, origins = allowed(settings)
        self.hosts = frozenset(h.encode("latin-1").lower() for h in hosts)
        self.origins = frozenset(o.encode("latin-1").lower() for o in origins)

    def refusal(self, scope: Scope) -> KubegateError | None:
        host = header(scope, b"host")
        if host is None or host.lower() not in self.hosts:
            return MisdirectedRequest("This gateway does not answer for that Host; use its public URL")
        origin = header(scope, b"origin")
        if origin is not None and origin.lower() not in self.origins:
            return Forbidden("Cross-origin request refused: the Origin is not this gateway's")
        return None
