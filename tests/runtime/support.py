"""Helpers for the runtime tests: event waiting, FIFO handshakes with a running task, spec building."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anyio

from mcp_server.runtime.base import RunEvent, RunSpec, Runtime

WAIT = 15.0
"""Seconds any single wait may take before the test fails (the machine is shared and noisy)."""


def spec(command: Sequence[str], **fields: Any) -> RunSpec:
    fields.setdefault("timeout_seconds", 30.0)
    run_id = fields.pop("run_id", f"run-{uuid.uuid4().hex[:12]}")
    return RunSpec(run_id=run_id, owner="tester", image="local", command=list(command), **fields)


def sh(script: str, **fields: Any) -> RunSpec:
    return spec(["sh", "-c", script], **fields)


class Events:
    """Pulls a runtime's single event stream and keeps what it saw, so tests can wait per run."""

    def __init__(self, runtime: Runtime) -> None:
        self._stream: AsyncIterator[RunEvent] = runtime.events()
        self.seen: list[RunEvent] = []

    async def wait(self, run_id: str, kind: str = "exited", *, timeout: float = WAIT) -> RunEvent:
        with anyio.fail_after(timeout):
            while True:
                for event in self.seen:
                    if event.run_id == run_id and event.kind == kind:
                        return event
                self.seen.append(await anext(self._stream))

    async def take(self, count: int, *, timeout: float = WAIT) -> list[RunEvent]:
        """The next ``count`` events, whatever their runs."""
        with anyio.fail_after(timeout):
            while len(self.seen) < count:
                self.seen.append(await anext(self._stream))
        return self.seen[:count]

    def of(self, run_id: str) -> list[RunEvent]:
        return [event for event in self.seen if event.run_id == run_id]


class Handshake:
    """Two FIFOs a task talks to: it says ``ready`` and waits for ``go``.

    The test holds both FIFOs open read-write, so neither side ever blocks on ``open`` and what
    one side writes waits in the pipe until the other reads it. They live outside ``/tmp`` so a
    sandboxed task sees them (read-only mounts do not stop FIFO traffic).
    """

    def __init__(self, directory: Path) -> None:
        name = uuid.uuid4().hex[:8]
        self.ready_path, self.go_path = directory / f"ready-{name}", directory / f"go-{name}"
        os.mkfifo(self.ready_path)
        os.mkfifo(self.go_path)
        self._ready = os.open(self.ready_path, os.O_RDWR | os.O_NONBLOCK)
        self._go = os.open(self.go_path, os.O_RDWR | os.O_NONBLOCK)

    def script(self, then: str = "") -> str:
        """Shell that signals readiness, blocks until released, then runs ``then``."""
        return f"echo ready > {self.ready_path}; read x < {self.go_path}; {then}"

    async def ready(self, *, timeout: float = WAIT) -> None:
        with anyio.fail_after(timeout):
            await anyio.wait_readable(self._ready)
        os.read(self._ready, 64)

    def go(self) -> None:
        os.write(self._go, b"go\n")

    def close(self) -> None:
        os.close(self._ready)
        os.close(self._go)


def processes_in(directory: Path) -> list[int]:
    """Pids of the live processes whose cwd is ``directory``: what a run may have left behind."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/cwd") == str(directory) and _state(entry) != "Z":
                found.append(int(entry))
        except OSError:
            continue
    return found


def _state(pid: str) -> str:
    with open(f"/proc/{pid}/stat", "rb") as file:
        stat = file.read()
    return stat[stat.rindex(b")") + 2 :].split()[0].decode()


def zombie_children() -> list[int]:
    """Our children that exited and were never reaped."""
    me = str(os.getpid())
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as file:
                stat = file.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        if fields[1].decode() == me and fields[0] == b"Z":
            found.append(int(entry))
    return found
