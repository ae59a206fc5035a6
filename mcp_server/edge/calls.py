"""The one way every door (stdio, MCP over HTTP, the shorthand, REST) turns a request into a call.

``door_context`` is the single place a handler's ``Context`` is built. ``call`` runs a tool
through ``registry.call`` (scope check, validation, metrics) and, for the capabilities that
wait (``Capability.waits``), stops the wait with 401 when its credential is revoked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mcp_server.auth.principal import Principal
from mcp_server.auth.revocation import StillValid, until_revoked
from mcp_server.context import Context, Log, Progress

if TYPE_CHECKING:
    from mcp_server.registry import Registry
    from mcp_server.services import Services


def door_context(services: Services, principal: Principal, *, progress: Progress | None = None,
                 log: Log | None = None) -> Context:
    """The handler's view of one call: who calls, what it may use, where progress goes."""
    return Context.for_principal(principal, services.parts, progress=progress, log=log)


async def call(registry: Registry, name: str, context: Context, arguments: dict[str, Any], *, door: str,
               strict: bool = True, still_valid: StillValid | None = None) -> dict[str, Any]:
    if still_valid is None or not registry.get(name).waits:
        return await registry.call(name, context, arguments, strict=strict, door=door)
    return await until_revoked(lambda: registry.call(name, context, arguments, strict=strict, door=door),
                               still_valid)
