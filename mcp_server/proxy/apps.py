"""The deployment origins: ``{name}.{KUBEGATE_APPS_DOMAIN}`` -> one of the app's ready replicas.

Replicas take turns (the runtime's ``endpoints`` rotates them). A ``public`` deployment answers
anyone; an ``internal`` one only its owner's API key (``Authorization: Bearer``, needs
``deployments:read``), which is taken off the request before the app sees it. Without it the
answer is 401 (whether or not the name exists); another user's key gets 404, exactly as for a name that does not exist.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from mcp_server.auth.keys import KEY_PREFIX
from mcp_server.proxy.forward import Forwarder, Headers
from mcp_server.proxy.hosts import host_of, label_under
from mcp_server.services import Services
from mcp_server.store.deployments import DeploymentRecord


class AppSite:
    """ASGI app for every deployment host."""

    def __init__(self, services: Services, forwarder: Forwarder | None = None) -> None:
        self.services = services
        self.deployments = services.parts.deployments
        self.forwarder = forwarder or Forwarder()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        label = label_under(host_of(scope), self.deployments.domain) or ""
        record = await self.deployments.by_host(label)
        verdict, headers = await self._admit(record, scope)
        if verdict != 200 or record is None:
            await _refuse(scope, send, verdict)
            return
        endpoints = await self.deployments.endpoints(record)
        if not endpoints:
            await _refuse(scope, send, 503)
            return
        if scope["type"] == "websocket":
            await self.forwarder.websocket(endpoints[0], scope, receive, send, headers)
        else:
            await self.forwarder.http(endpoints[0], scope, receive, send, headers)

    async def _admit(self, record: DeploymentRecord | None, scope: Scope) -> tuple[int, Headers]:
        """(200, headers to forward) when the request may pass, else (401 | 404, [])."""
        headers: Headers = list(scope["headers"])
        if record is not None and record.visibility == "public":
            return 200, headers
        authorization = next((v.decode("latin-1") for n, v in headers if n == b"authorization"), "")
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential.startswith(KEY_PREFIX):
            return 401, []  # whether or not the name exists
        principal = await self.services.keys.authenticate(credential)
        if principal is None:
            return 401, []
        if record is None or principal.user_id != record.user_id or not principal.allows("deployments:read"):
            return 404, []
        return 200, [(n, v) for n, v in headers if n != b"authorization"]


_BODIES = {
    401: b"This deployment is internal: send its owner's API key (Authorization: Bearer).\n",
    404: b"No such deployment.\n",
    503: b"No replica of this deployment is ready yet; deployments_status shows why.\n",
}


async def _refuse(scope: Scope, send: Send, status: int) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008 if status in (401, 404) else 1013})
        return
    body = _BODIES[status]
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="kubegate deployment"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
