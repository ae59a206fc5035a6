"""The capability registry: each capability is declared once and served by every door.

A capability is a typed async function ``(ctx, args: InputModel) -> OutputModel``. Its name,
scope and MCP annotations are given to the decorator; its input and output schemas come from
the signature and its description from the docstring. MCP tools, REST routes and the OpenAPI
document are all generated from here.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, get_type_hints

from pydantic import BaseModel, ValidationError

from mcp_server.context import Context
from mcp_server.errors import Forbidden, KubegateError, NotFound, ValidationFailed
from mcp_server.observability import METRICS

Handler = Callable[[Context, Any], Awaitable[BaseModel]]
H = TypeVar("H", bound=Callable[..., Awaitable[BaseModel]])


@dataclass(frozen=True, slots=True)
class Capability:
    name: str
    handler: Handler
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    scope: str
    title: str
    description: str
    read_only: bool = False
    destructive: bool = False
    idempotent: bool = False
    mcp_only: bool = False
    waits: bool = False
    """Runs until something happens (``*_wait``): stopped with 401 if its credential is revoked meanwhile."""
    admin: bool = False
    """Only administrators may call it (the handler checks); tools/list hides it from everyone else."""

    @property
    def toolset(self) -> str:
        """The resource: the capabilities module that declares it (``api_keys`` for ``api_keys_create``).

        Taken from the module, not the name, so ``sandboxes_read_file`` belongs to ``sandboxes``.
        This is what KUBEGATE_TOOLSETS picks.
        """
        return self.handler.__module__.rpartition(".")[2]


class Registry:
    def __init__(self) -> None:
        self._capabilities: dict[str, Capability] = {}

    def capability(self, *, scope: str, title: str, read_only: bool = False, destructive: bool = False,
                   idempotent: bool = False, mcp_only: bool = False, waits: bool = False,
                   admin: bool = False) -> Callable[[H], H]:
        """Declare the decorated handler as a capability named after the function."""

        def register(handler: H) -> H:
            hints = get_type_hints(handler)
            params = list(inspect.signature(handler).parameters)
            if len(params) != 2:
                raise TypeError(f"{handler.__name__} must take (ctx, args)")
            self.add(Capability(
                name=handler.__name__, handler=handler, input_model=hints[params[1]],
                output_model=hints["return"], scope=scope, title=title,
                description=inspect.cleandoc(handler.__doc__ or title), read_only=read_only,
                destructive=destructive, idempotent=idempotent, mcp_only=mcp_only, waits=waits, admin=admin,
            ))
            return handler

        return register

    def add(self, capability: Capability) -> None:
        if capability.name in self._capabilities:
            raise ValueError(f"capability {capability.name} declared twice")
        self._capabilities[capability.name] = capability

    def get(self, name: str) -> Capability:
        try:
            return self._capabilities[name]
        except KeyError:
            raise NotFound(f"Unknown tool '{name}'") from None

    def list(self) -> list[Capability]:
        return list(self._capabilities.values())

    def __contains__(self, name: str) -> bool:
        return name in self._capabilities

    def toolsets(self) -> tuple[str, ...]:
        return tuple(sorted({c.toolset for c in self._capabilities.values()}))

    def select(self, toolsets: str) -> Registry:
        """A registry of only the named toolsets (comma-separated; empty or ``all``: this one)."""
        wanted = {t.strip().replace("-", "_") for t in toolsets.split(",") if t.strip()}
        if not wanted or wanted == {"all"}:
            return self
        unknown = sorted(wanted - set(self.toolsets()))
        if unknown:
            raise ValidationFailed(f"unknown toolset(s) {', '.join(unknown)}; valid: all, {', '.join(self.toolsets())}",
                                   field="KUBEGATE_TOOLSETS")
        selected = Registry()
        for capability in self.list():
            if capability.toolset in wanted:
                selected.add(capability)
        return selected

    async def call(self, name: str, ctx: Context, arguments: dict[str, Any], *, strict: bool = True,
                   door: str = "internal") -> dict[str, Any]:
        """Check scope, validate ``arguments``, run the handler; returns the wire JSON of its result.

        JSON arguments are validated strictly (``0`` is not ``false``, ``"5"`` is not ``5``); a
        query string has only strings, so REST's query routes pass ``strict=False``. Every call
        is counted and timed here, per tool and door (``/metrics``).
        """
        capability = self.get(name)
        started = time.perf_counter()
        outcome = "error"
        METRICS.tool_in_flight.add(1, name)
        try:
            body = await self._run(capability, ctx, arguments, strict)
            outcome = "ok"
            return body
        except KubegateError as exc:
            outcome = exc.code
            raise
        finally:
            METRICS.tool_in_flight.add(-1, name)
            METRICS.tool_calls.inc(name, door, outcome)
            METRICS.tool_seconds.observe(time.perf_counter() - started, name)

    async def _run(self, capability: Capability, ctx: Context, arguments: dict[str, Any],
                   strict: bool) -> dict[str, Any]:
        name = capability.name
        if not ctx.principal.allows(capability.scope):
            raise Forbidden(f"This credential lacks the '{capability.scope}' scope needed for {name}")
        try:
            args = capability.input_model.model_validate(arguments, strict=strict)
        except ValidationError as exc:
            raise validation_failed(exc) from None
        result = await capability.handler(ctx, args)
        return result.model_dump(mode="json", by_alias=True, exclude_none=True)


def validation_failed(exc: ValidationError) -> ValidationFailed:
    """The first pydantic error as a 400 that names the offending field."""
    first = exc.errors(include_url=False, include_input=False)[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown field"
    return ValidationFailed(message, field=field)


registry = Registry()
"""The capabilities of kubegate; the modules under ``mcp_server.capabilities`` fill it."""
