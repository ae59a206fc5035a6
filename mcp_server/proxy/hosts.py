"""Pick requests for workload origins out by ``Host``, before any of the gateway's own layers.

A sandbox page is another origin (``{name}-{hash}.{domain}``), so its scripts can never read the
gateway's cookies or call ``/api`` with them; dispatching here, outermost, also means none of
the gateway's API auth, CSRF or body limits apply to traffic that is the workload's own.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import ASGIApp, Receive, Scope, Send


def host_of(scope: Scope) -> str:
    """The request's host name, lower-cased, without its port."""
    for name, value in scope.get("headers", ()):
        if name == b"host":
            host: str = value.decode("latin-1").strip().lower()
            return host if host.endswith("]") else host.rsplit(":", 1)[0]
    return ""


def label_under(host: str, domain: str) -> str | None:
    """``label`` when ``host`` is exactly ``label.domain`` (one DNS label, no deeper names)."""
    suffix = "." + domain.lower()
    if not host.endswith(suffix):
        return None
    label = host[: -len(suffix)]
    return label if label and "." not in label else None


class HostDispatch:
    """Send HTTP and WebSocket requests whose Host is under one of ``sites``' domains to that site."""

    def __init__(self, app: ASGIApp, sites: Mapping[str, ASGIApp]) -> None:
        self.app = app
        self.sites = dict(sites)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = host_of(scope)
            for domain, site in self.sites.items():
                if label_under(host, domain) is not None:
                    await site(scope, receive, send)
                    return
        await self.app(scope, receive, send)
