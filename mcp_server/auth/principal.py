"""Who is calling: the principal every handler receives in its context, and scope checks."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from mcp_server.models.scopes import ACTIONS as ACTIONS
from mcp_server.models.scopes import ALL_SCOPES as ALL_SCOPES
from mcp_server.models.scopes import DEFAULT_SCOPES as DEFAULT_SCOPES
from mcp_server.models.scopes import RESOURCES as RESOURCES
from mcp_server.models.scopes import valid_scope as valid_scope

PRINCIPAL_KEY = "kubegate.principal"
"""Where the auth middleware leaves the ``Principal`` in the ASGI scope."""

AuthMethod = Literal["api_key", "session", "local"]


def grants(granted: Iterable[str], needed: str) -> bool:
    """Whether any of ``granted`` covers ``needed`` (itself ``resource:action``)."""
    resource, _, _ = needed.partition(":")
    return any(g in ("*", needed, f"{resource}:*") for g in granted)


def covers(granted: Iterable[str], requested: Iterable[str]) -> bool:
    """Whether ``granted`` covers every scope in ``requested``, wildcards included."""
    held = tuple(granted)
    for scope in requested:
        if scope == "*":
            expanded: tuple[str, ...] = ALL_SCOPES
        elif scope.endswith(":*"):
            expanded = tuple(f"{scope[:-2]}:{a}" for a in ACTIONS)
        else:
            expanded = (scope,)
        if not all(grants(held, s) for s in expanded):
            return False
    return True


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    email: str
    method: AuthMethod
    scopes: tuple[str, ...]
    key_id: str | None = None
    session_id: str | None = None

    def allows(self, scope: str) -> bool:
        return grants(self.scopes, scope)
