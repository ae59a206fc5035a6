"""Who is calling: the principal every handler receives in its context, and scope checks."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

RESOURCES = ("api-keys", "tasks", "workflows", "sandboxes", "deployments", "audit")
ACTIONS = ("read", "write")
ALL_SCOPES: tuple[str, ...] = tuple(f"{r}:{a}" for r in RESOURCES for a in ACTIONS)
DEFAULT_SCOPES: tuple[str, ...] = tuple(f"{r}:*" for r in RESOURCES)

PRINCIPAL_KEY = "kubegate.principal"
"""Where the auth middleware leaves the ``Principal`` in the ASGI scope."""

AuthMethod = Literal["api_key", "session", "local"]


def valid_scope(scope: str) -> bool:
    """A scope is ``resource:action``, ``resource:*`` or ``*``."""
    if scope == "*":
        return True
    resource, _, action = scope.partition(":")
    return resource in RESOURCES and (action in ACTIONS or action == "*")


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
