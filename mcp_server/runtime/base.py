"""The Runtime protocol: what the engine needs from wherever work actually runs.

A *run* is one container (Kubernetes) or one process (local) executed to completion. The
engine starts runs, cancels them, reads their logs and reacts to their events; it never
asks a runtime for state by polling. Both runtimes implement the same protocol, so tasks and
workflow steps behave the same on a laptop and on a cluster.

Event flow::

    start(spec) ──► RunEvent("started") ──► RunEvent("exited", exit_code, output, reason)
    cancel(id)  ──► RunEvent("exited", reason="cancelled") unless it already exited

``started`` comes at most once and never after ``exited`` (a run cancelled before it was seen
running may only say ``exited``).

Long-lived workloads (``Workloads`` below) add ``ready`` between the two and stay up until their
deadline (which ``extend`` moves) or a cancel.

After a gateway restart the engine calls ``recover(active)`` with every run it still believes
is active; the runtime re-attaches to those still going (it may say ``started`` again, which the
engine takes as a no-op) and emits ``exited`` for those that ended (or vanished) while the
gateway was down, so nothing stays ``running`` forever. A run gets exactly one ``exited`` (unless
it is removed first).

Logs are read one way, ``read_logs``: a bounded tail, at once, from the gateway's own copy (a
run's log outlives its process or Pod). Waiters (``tasks_wait``) re-read it when the run's
owner says something changed, so no streaming reader is part of the protocol.

``tests/runtime/contract/`` holds the one suite every implementation (and every test double)
must pass. The protocol is meant to grow by *adding* methods for new kinds of workload (the
long-lived ones of sandboxes and deployments: exec, extend, readiness, an endpoint) next to
these, each with its contract tests; the run methods below stay as they are.
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
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

EventKind = Literal["started", "ready", "exited"]
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
        """Stop the run if needed, forget it and delete what it left (logs, files, cluster objects).

        The caller records the outcome itself: whether a removed run still says ``exited`` is not defined.
        """

    def read_logs(self, run_id: str, *, tail: int) -> str:
        """The last ``tail`` bytes of the run's combined stdout/stderr as text, without waiting.

        "" for an unknown or removed run; a character cut by the tail is dropped, not replaced.
        """
        ...

    def events(self) -> AsyncIterator[RunEvent]:
        """The single stream of events for all runs; consumed by one engine."""
        ...

    async def recover(self, active: Sequence[RunSpec]) -> None:
        """Re-attach to runs the store still believes active after a restart."""

    async def close(self) -> None:
        """Stop watching; runs keep going (they must survive a gateway restart)."""


EXEC_STREAM_LIMIT = 1 << 20
"""Bytes of each of an exec's stdout and stderr kept; the rest is dropped and ``truncated`` set."""


@dataclass(frozen=True, slots=True)
class ExecRequest:
    """One command run inside a live workload, beside whatever it already runs."""

    command: Sequence[str]
    stdin: bytes = b""
    cwd: str | None = None
    """Relative to the workload's home (its work dir); None for the home itself."""
    env: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class ExecResult:
    exit_code: int
    """128 + N when killed by signal N, as for runs; a timeout kills with SIGKILL (137)."""
    stdout: bytes
    stderr: bytes
    truncated: bool
    timed_out: bool


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the gateway's proxy reaches a workload's port: a Unix socket (local) or host:port."""

    unix_socket: str | None = None
    host: str | None = None
    port: int | None = None


@dataclass(frozen=True, slots=True)
class WorkloadStats:
    processes: int
    memory_bytes: int
    cpu_seconds: float = 0.0
    """User + system CPU time of the workload's processes (those alive now)."""


OutputSink = Callable[[str, bytes], Awaitable[None]]
"""Receives an exec's output as it comes: ``("stdout" | "stderr", chunk)``."""


@runtime_checkable
class Workloads(Protocol):
    """Long-lived workloads (sandboxes, deployment replicas): they stay up until stopped or timed out.

    A runtime that offers them exposes this as its ``workloads`` attribute. A workload is a run
    (``RunSpec``) that is started with ``start`` below instead of ``Runtime.start``; it shares the
    runtime's ``cancel``, ``remove``, ``recover`` and event stream, whose events for it are
    ``started`` (it exists), ``ready`` (its agent answers: exec, files and the port work) and
    ``exited`` (timeout, cancelled, or it died: ``error``/``lost``). ``ready`` may come again after
    a restart; it means "still ready".
    """

    async def start(self, spec: RunSpec, *, port: int) -> None:
        """Begin ``spec`` as a long-lived workload whose ``port`` the proxy may reach."""

    async def exec(self, run_id: str, request: ExecRequest, sink: OutputSink | None = None) -> ExecResult:
        """Run a command inside the workload; ``sink`` gets the output while it runs."""
        ...

    async def read_file(self, run_id: str, path: str, *, limit: int) -> bytes:
        """A file's bytes, read inside the workload; ``path`` is confined to its home (400 otherwise)."""
        ...

    async def write_file(self, run_id: str, path: str, data: bytes) -> None:
        """Create or replace a file inside the workload, confined as ``read_file``."""

    async def extend(self, run_id: str, deadline: datetime) -> None:
        """Move the workload's end to ``deadline``; holds across a gateway restart."""

    def endpoint(self, run_id: str, *, owner: str | None = None) -> Endpoint:
        """Where the proxy connects to reach the workload's port (``owner``'s: it may be another process's)."""
        ...

    async def stats(self, run_id: str) -> WorkloadStats:
        """What the workload uses now."""
        ...


def last_line(text: str) -> str | None:
    """The last non-empty line of ``text``: a step's output when it wrote no output file."""
    for line in reversed(text.splitlines()):
        if line.strip():
            return cap_output(line.strip())
    return None


def decode_tail(data: bytes, *, cut: bool) -> str:
    """Log bytes as text; ``cut`` when ``data`` starts where a tail was cut, maybe mid-character.

    Characters cut at either end are dropped, never shown as U+FFFD; invalid bytes inside are.
    """
    if cut:
        start = 0
        while start < min(3, len(data)) and 0x80 <= data[start] < 0xC0:
            start += 1
        data = data[start:]
    # An incremental decoder without ``final``: a character cut at the end is held back, not replaced.
    return codecs.getincrementaldecoder("utf-8")("replace").decode(data, final=False)


def cap_output(text: str) -> str:
    """Cut ``text`` to ``OUTPUT_LIMIT`` bytes of UTF-8 without splitting a character."""
    data = text.encode()
    if len(data) <= OUTPUT_LIMIT:
        return text
    return data[:OUTPUT_LIMIT].decode(errors="ignore")


def workloads_of(runtime: Runtime) -> Workloads | None:
    """The runtime's long-lived workloads, if it runs them (``Workloads``' docstring)."""
    found = getattr(runtime, "workloads", None)
    return found if isinstance(found, Workloads) else None
