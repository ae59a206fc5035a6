"""MCP resources: readable things addressed by URI templates, such as a task's logs.

A capability module declares a resource with ``@resource(...)``; its reader gets the caller
and the template's variables and returns text. Scopes and ownership apply exactly as for
tools: the reader looks objects up as the caller, so another user's id is not found.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import mcp_types as types

from mcp_server.auth.principal import Principal
from mcp_server.context import Context
from mcp_server.errors import Forbidden, NotFound
from mcp_server.services import Services

Reader = Callable[[Context, dict[str, str]], Awaitable[str]]
"""Reads one resource as the context's principal, from the template's variables."""


@dataclass(frozen=True, slots=True)
class ResourceKind:
    name: str
    uri_template: str
    scope: str
    description: str
    mime_type: str
    reader: Reader

    @property
    def toolset(self) -> str:
        """The resource after the scheme (``tasks`` of ``kubegate://tasks/...``), as a tool's name begins."""
        return self.uri_template.partition("://")[2].split("/")[0].replace("-", "_")

    def match(self, uri: str) -> dict[str, str] | None:
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[A-Za-z0-9_.-]+)", re.escape(self.uri_template))
        found = re.fullmatch(pattern, uri)
        return found.groupdict() if found else None


KINDS: list[ResourceKind] = []


def resource(name: str, uri_template: str, *, scope: str, description: str,
             mime_type: str = "text/plain") -> Callable[[Reader], Reader]:
    def register(reader: Reader) -> Reader:
        KINDS.append(ResourceKind(name, uri_template, scope, description, mime_type, reader))
        return reader

    return register


class ResourceSet:
    def __init__(self, services: Services, toolsets: tuple[str, ...] | None = None) -> None:
        self._parts = services.parts
        self._kinds = [k for k in KINDS if toolsets is None or k.toolset in toolsets]

    def templates(self) -> list[types.ResourceTemplate]:
        return [
            types.ResourceTemplate(name=k.name, uri_template=k.uri_template, description=k.description,
                                   mime_type=k.mime_type)
            for k in self._kinds
        ]

    async def listing(self, principal: Principal) -> list[types.Resource]:
        return []

    async def read(self, principal: Principal, uri: str) -> tuple[str, str]:
        for kind in self._kinds:
            variables = kind.match(uri)
            if variables is None:
                continue
            if not principal.allows(kind.scope):
                raise Forbidden(f"This credential lacks the '{kind.scope}' scope")
            return await kind.reader(Context.for_principal(principal, self._parts), variables), kind.mime_type
        raise NotFound(f"Unknown resource {uri}")
