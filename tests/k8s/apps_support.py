"""Helpers for the Kubernetes ``Apps`` tests: an event reader that waits per app, specs of the test app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio

from mcp_server.runtime.apps import AppEvent, AppRef, Apps, AppSpec, AppStatus
from tests.k8s.sim.app import command, free_port

WAIT = 40.0


def ref(name: str, owner: str = "alice@example.com") -> AppRef:
    """How a reader names an app (the owner does not matter to the runtime's read path on Kubernetes)."""
    return AppRef(name, owner)


def app_spec(directory: Path, name: str = "web", **fields: Any) -> AppSpec:
    port = fields.pop("port", None) or free_port()
    fields.setdefault("owner", "alice@example.com")
    fields.setdefault("image", "python:3.11-slim")
    fields.setdefault("health_path", "/healthz")
    return AppSpec(name=name, port=port, command=tuple(command(directory, port)), **fields)


def revised(spec: AppSpec, **changes: Any) -> AppSpec:
    return replace(spec, revision=spec.revision + 1, **changes)


class AppEvents:
    """Keeps every event of the apps' single stream, so a test can wait for a state and look back."""

    def __init__(self, apps: Apps) -> None:
        self._stream: AsyncIterator[AppEvent] = apps.events()
        self.seen: list[AppEvent] = []

    async def until(self, name: str, check: Callable[[AppStatus], bool], *, timeout: float = WAIT) -> AppStatus:
        """The first status of ``name`` (from now on, or the latest seen) that passes ``check``."""
        with anyio.fail_after(timeout):
            latest = self.latest(name)
            if latest is not None and check(latest):
                return latest
            while True:
                event = await anext(self._stream)
                self.seen.append(event)
                if event.name == name and event.status is not None and check(event.status):
                    return event.status

    async def gone(self, name: str, *, timeout: float = WAIT) -> None:
        with anyio.fail_after(timeout):
            while not any(e.name == name and e.status is None for e in self.seen):
                self.seen.append(await anext(self._stream))

    def latest(self, name: str) -> AppStatus | None:
        for event in reversed(self.seen):
            if event.name == name:
                return event.status
        return None

    def phases(self, name: str) -> list[str]:
        return [e.status.phase for e in self.seen if e.name == name and e.status is not None]

    async def close(self) -> None:
        await self._stream.aclose()  # type: ignore[attr-defined]


def phase(wanted: str, *, ready: int | None = None, revision: int | None = None) -> Callable[[AppStatus], bool]:
    def check(status: AppStatus) -> bool:
        return (status.phase == wanted and (ready is None or status.ready_replicas == ready)
                and (revision is None or status.revision == revision))
    return check
