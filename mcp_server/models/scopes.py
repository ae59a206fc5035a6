"""The scope vocabulary: ``resource:action``, ``resource:*`` or ``*``.

It is wire vocabulary (keys are created with it), so it lives with the models; what a scope
grants, and who may hold which, is decided in ``auth``.
"""

from __future__ import annotations

RESOURCES = ("api-keys", "tasks", "workflows", "sandboxes", "deployments", "audit")
ACTIONS = ("read", "write")
ALL_SCOPES: tuple[str, ...] = tuple(f"{r}:{a}" for r in RESOURCES for a in ACTIONS)
DEFAULT_SCOPES: tuple[str, ...] = tuple(f"{r}:*" for r in RESOURCES)


def valid_scope(scope: str) -> bool:
    """A scope is ``resource:action``, ``resource:*`` or ``*``."""
    if scope == "*":
        return True
    resource, _, action = scope.partition(":")
    return resource in RESOURCES and (action in ACTIONS or action == "*")
