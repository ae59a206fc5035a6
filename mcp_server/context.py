"""What a handler receives: who is calling, the services it may use, and a progress channel."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mcp_server.auth.principal import Principal

if TYPE_CHECKING:
    from mcp_server.services import Services

Progress = Callable[[float, float | None, str | None], Awaitable[None]]
Log = Callable[[str, str], Awaitable[None]]


async def _no_progress(progress: float, total: float | None, message: str | None) -> None:
    return None


async def _no_log(level: str, message: str) -> None:
    return None


@dataclass(slots=True)
class Context:
    principal: Principal
    services: Services
    progress: Progress = field(default=_no_progress)
    log: Log = field(default=_no_log)
