"""The Runtime protocol: what the engine needs from wherever work actually runs.

A *run* is one container (Kubernetes) or one process (local) executed to completion. The
engine starts runs, cancels them, reads their logs and reacts to their events; it never
asks a runtime for state by polling. Both runtimes implement the same protocol, so tasks and
workflow steps behave the same on a laptop and on a cluster.

Event flow::

    start(spec) ──► RunEvent("started") ──► RunEvent("exited", exit_code, output, reason)
    cancel(id)  ──► RunEvent("exited", reason="cancelled") unless it already exited

After a gateway restart the engine calls ``recover(active)`` with every run it still believes
is active; the runtime re-attaches to those still going and emits ``exited`` for those that
ended (or vanished) while the gateway was down, so nothing stays ``running`` forever.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

# Sizes are defined once, in models.sizes; re-exported for the runtimes.
from mcp_server.models.sizes import DEFAULT_SIZE as DEFAULT_SIZE
from mcp_server.models.sizes import SIZES as SIZES
from mcp_server.models.sizes import Size as Size
from mcp_server.models.sizes import SizeName as SizeName

OUTPUT_LIMIT = 4096
"""Bytes of step output kept: the size of a Kubernetes termination message."""

EventKind = Literal["started", "exited"]
ExitReason = Literal["completed", "error", "timeout", "cancelled", "lost", "disk_limit", "memory_limit"]




@dataclass(frozen=True, slots=True)
class RunSpec:
    """Everything a runtime needs to execute one run; no knowledge of tasks or workflows."""

    run_id: str
    owner: str
    image: str
    command: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: float = 600.0
    size: SizeName = DEFAULT_SIZE
    network: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunEvent:
    """A change in a run's life. ``exited`` carries the result."""

    run_id: str
    kind: EventKind
    at: datetime
    exit_code: int | None = None
    output: str | None = None
    reason: ExitReason | None = None
    message: str | None = None


@runtime_checkable
class Runtime(Protocol):
    """Where runs execute. Implementations: ``runtime.local.LocalRuntime``, ``k8s.runtime.KubernetesRuntime``."""

    name: str

    async def start(self, spec: RunSpec) -> None:
        """Begin executing ``spec``; returns once the run exists. Emits ``started`` then ``exited``."""

    async def cancel(self, run_id: str) -> None:
        """Stop the run if it is going. Idempotent; an unknown run is not an error."""

    async def remove(self, run_id: str) -> None:
        """Forget the run and delete everything it left behind (logs, files, cluster objects)."""

    def logs(self, run_id: str, *, tail: int | None = None, follow: bool = False) -> AsyncIterator[str]:
        """Yield the run's combined stdout/stderr; ``tail`` keeps the last N bytes; ``follow`` waits for more."""
        ...

    def read_logs(self, run_id: str, *, tail: int) -> str:
        """The last ``tail`` bytes of the run's logs as text, without waiting ("" when none)."""
        ...

    def events(self) -> AsyncIterator[RunEvent]:
        """The single stream of events for all runs; consumed by one engine."""
        ...

    async def recover(self, active: Sequence[RunSpec]) -> None:
        """Re-attach to runs the store still believes active after a restart."""

    async def close(self) -> None:
        """Stop watching; runs keep going (they must survive a gateway restart)."""


def last_line(text: str) -> str | None:
    """The last non-empty line of ``text``: a step's output when it wrote no output file."""
    for line in reversed(text.splitlines()):
        if line.strip():
            return cap_output(line.strip())
    return None


def cap_output(text: str) -> str:
    """Cut ``text`` to ``OUTPUT_LIMIT`` bytes of UTF-8 without splitting a character."""
    data = text.encode()
    if len(data) <= OUTPUT_LIMIT:
        return text
    return data[:OUTPUT_LIMIT].decode(errors="ignore")
