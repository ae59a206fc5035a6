"""What the sandbox and deployment services share: the part of the runtime that runs them, the public URL
of a host name, and a create that leaves no row behind when the runtime refuses the workload."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar
from urllib.parse import urlsplit

from mcp_server.config import Settings
from mcp_server.errors import Unavailable

T = TypeVar("T")


def required(part: T | None, runtime_name: str, what: str) -> T:
    """The runtime's part that runs ``what``; Unavailable (with the way out) on a runtime without one."""
    if part is None:
        raise Unavailable(f"The {runtime_name} runtime cannot run {what} yet; use KUBEGATE_RUNTIME=local")
    return part


def public_url(settings: Settings, host: str) -> str:
    """``host`` on the gateway's public scheme and port (a workload is served where the gateway is)."""
    public = urlsplit(settings.public_url)
    port = f":{public.port}" if public.port else ""
    return f"{public.scheme}://{host}{port}"


@asynccontextmanager
async def removed_on_failure(remove: Callable[[], Awaitable[object]]) -> AsyncIterator[None]:
    """A row stored (under the user's quota) for a workload the runtime then refuses never existed: ``remove``
    it, and the caller gets the error, not a record."""
    try:
        yield
    except BaseException:
        await remove()
        raise
