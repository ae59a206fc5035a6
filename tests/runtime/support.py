"""Helpers for the runtime tests: event waiting, FIFO handshakes with a running task, spec building."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anyio

from mcp_server.runtime.base import RunEvent, RunSpec, Runtime

WAIT = 20.0
"""Seconds any single wait may take before the test fails (the machine is shared and noisy)."""


def spec(command: Sequence[str], **fields: Any) -> RunSpec:
    """A run of ``command``; the id and owner are valid for every runtime (a file name, a label value)."""
    fields.setdefault("timeout_seconds", 30.0)
    fields.setdefault("owner", "alice@example.com")
    fields.setdefault("image", "busybox:1.36")
    run_id = fields.pop("run_id", f"task_{uuid.uuid4().hex[:12]}")
    return RunSpec(run_id=run_id, command=list(command), **fields)


def sh(script: str, **fields: Any) -> RunSpec:
    return spec(["sh", "-c", script], **fields)


class Events:
    """Reads a runtime's single event stream and keeps what it saw, so tests can wait per run.

    ``wait`` finds the first event of a kind; ``next`` hands out a run's events one at a time, in order.
    """

    def __init__(self, runtime: Runtime) -> None:
        self._stream: AsyncIterator[RunEvent] = runtime.events()
        self.seen: list[RunEvent] = []
        self._handed: dict[str, int] = {}

    async def _pull(self) -> None:
        try:
            self.seen.append(await anext(self._stream))
        except StopAsyncIteration:
            raise AssertionError("the event stream ended") from None

    async def wait(self, run_id: str, kind: str = "exited", *, timeout: float = WAIT) -> RunEvent:
        with anyio.fail_after(timeout):
            while True:
                for event in self.seen:
                    if event.run_id == run_id and event.kind == kind:
                        return event
                await self._pull()

    async def next(self, run_id: str, *, timeout: float = WAIT) -> RunEvent:
        """The first event of ``run_id`` not yet handed out by ``next``."""
        with anyio.fail_after(timeout):
            while len(self.of(run_id)) <= self._handed.get(run_id, 0):
                await self._pull()
        index = self._handed[run_id] = self._handed.get(run_id, 0) + 1
        return self.of(run_id)[index - 1]

    async def take(self, count: int, *, timeout: float = WAIT) -> list[RunEvent]:
        """The first ``count`` events, whatever their runs."""
        with anyio.fail_after(timeout):
            while len(self.seen) < count:
                await self._pull()
        return self.seen[:count]

    def of(self, run_id: str) -> list[RunEvent]:
        return [event for event in self.seen if event.run_id == run_id]

    async def close(self) -> None:
        aclose = getattr(self._stream, "aclose", None)
        if aclose is not None:
            await aclose()


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
        for fifo in (self.ready_path, self.go_path):  # a run may have a host uid of its own (not root)
            os.chmod(fifo, 0o666)
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
