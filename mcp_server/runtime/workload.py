"""Long-lived local workloads: a run whose command is the in-sandbox agent (see ``agent``).

A workload is an ordinary local run under its own shim, so it survives a gateway restart and
is ended on time by the shim even while no gateway is up. What it adds:

- two listening Unix sockets the gateway binds in the run dir (outside the sandbox's view) and
  hands to the agent as fds 3 and 4: ``agent.sock`` for exec/files/stats, ``port.sock`` spliced
  to the workload's port inside its network namespace;
- ``ready``: emitted once the agent answers a ping (again after a restart, for recovered ones);
- ``extend``: writes the new end to ``RUN_DIR/deadline`` and signals the shim (SIGUSR1), so the
  deadline lives with the shim, not with the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import marshal
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_server.config import Settings
from mcp_server.errors import BadRequest, Conflict, NotFound, PayloadTooLarge, Unavailable
from mcp_server.runtime import agent, agent_app, shim
from mcp_server.runtime.base import (
    EXEC_STREAM_LIMIT,
    Endpoint,
    ExecRequest,
    ExecResult,
    OutputSink,
    RunEvent,
    RunSpec,
    WorkloadStats,
)
from mcp_server.runtime.rundir import RunDir

if TYPE_CHECKING:
    from mcp_server.runtime.local import LocalRuntime

logger = logging.getLogger(__name__)

WORKLOAD_LABEL = "workload"
"""Label of a ``RunSpec`` that is a long-lived workload (``recover`` probes it for readiness)."""
CONTROL_SOCKET = "agent.sock"
BRIDGE_SOCKET = "port.sock"
_APP_IMPORT = "from mcp_server.runtime.agent_app import App, killpg, load_app\n"


def agent_script() -> str:
    """The agent as one script for ``python3 -I -S -c``: ``agent_app``, then ``agent`` without its import of
    ``agent_app`` (whose names are then already defined) and without a second ``from __future__`` line."""
    core = Path(agent.__file__).read_text()
    for line in ("from __future__ import annotations\n", _APP_IMPORT):
        if core.count(line) != 1:
            raise RuntimeError(f"runtime/agent.py must hold {line.strip()!r} once, to be joined into a script")
        core = core.replace(line, "", 1)
    return Path(agent_app.__file__).read_text() + "\n\n" + core


AGENT_SOURCE = agent_script()
_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
_READY_SECONDS = 30.0
_NOBODY = 65534
_AGENT_ERRORS = {400: BadRequest, 404: NotFound, 413: PayloadTooLarge}


class LocalWorkloads:
    """``Workloads`` on this machine; shares the ``LocalRuntime``'s shims, recovery and events."""

    def __init__(self, runtime: LocalRuntime, settings: Settings) -> None:
        self._runtime = runtime
        self._runs_dir = settings.runs_dir.resolve()
        self._cpu_horizon = float(settings.max_sandbox_timeout_seconds)
        self._probes: set[asyncio.Task[None]] = set()

    async def start(self, spec: RunSpec, *, port: int) -> None:
        if not self._runtime.isolated:
            # The port bridge dials 127.0.0.1 in the workload's network namespace: in the host's,
            # that is the host's own services (the gateway itself, by default), not the workload.
            raise Unavailable("a sandbox needs a network namespace of its own: install bubblewrap "
                              "(KUBEGATE_ISOLATION)")
        command = ["env", "MALLOC_ARENA_MAX=1", _PYTHON, "-I", "-S", "-c", AGENT_SOURCE, "3", "4", str(port)]
        # rlimits span the longest life an extend may give, not the first timeout.
        planned = replace(spec, command=command, timeout_seconds=self._cpu_horizon)
        await self._runtime.launch(replace(spec, labels={**spec.labels, WORKLOAD_LABEL: "1"}), planned=planned,
                                   prepare=_listen)
        self.watch_ready(spec.run_id)

    def watch_ready(self, run_id: str) -> None:
        """Emit ``ready`` once the workload's agent answers (or cancel it if it never does)."""
        task = asyncio.get_running_loop().create_task(self._probe(run_id))
        self._probes.add(task)
        task.add_done_callback(self._probes.discard)

    async def _probe(self, run_id: str) -> None:
        try:
            async with asyncio.timeout(_READY_SECONDS):
                reply = await self._call(run_id, {"op": "ping"})
        except (TimeoutError, OSError, Unavailable, ValueError) as exc:
            logger.warning("workload %s never became ready (%s); stopping it", run_id, exc)
            await self._runtime.cancel(run_id)
            return
        if reply.get("ok"):
            self._runtime.emit(RunEvent(run_id, "ready", datetime.now(UTC)))

    async def exec(self, run_id: str, request: ExecRequest, sink: OutputSink | None = None) -> ExecResult:
        body = {
            "op": "exec", "command": list(request.command), "cwd": request.cwd, "env": dict(request.env),
            "stdin": bytes(request.stdin), "timeout": request.timeout_seconds, "cap": EXEC_STREAM_LIMIT,
        }
        out: dict[str, bytearray] = {"o": bytearray(), "e": bytearray()}
        reader, writer = await self._open(run_id, body)
        try:
            async with asyncio.timeout(request.timeout_seconds + 30):  # the agent times the command itself
                while True:
                    head = await reader.readexactly(5)
                    if head[:1] == b"{":  # refused before it ran (a bad cwd): one JSON line
                        _checked(json.loads(head + await reader.readline()))
                    payload = await reader.readexactly(int.from_bytes(head[1:], "big"))
                    kind = head[:1].decode()
                    if kind == "x":
                        end: dict[str, Any] = json.loads(payload)
                        break
                    out[kind] += payload
                    if sink is not None:
                        await sink("stdout" if kind == "o" else "stderr", payload)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, ValueError) as exc:
            raise Unavailable(f"the sandbox's agent stopped answering ({type(exc).__name__}); is it running?") from exc
        finally:
            writer.close()
        return ExecResult(int(end["exitCode"]), bytes(out["o"]), bytes(out["e"]), bool(end["truncated"]),
                          bool(end["timedOut"]))

    async def read_file(self, run_id: str, path: str, *, limit: int) -> bytes:
        reader, writer = await self._open(run_id, {"op": "read", "path": path, "max": limit})
        try:
            reply = _checked(json.loads(await reader.readline()))
            return await reader.readexactly(int(reply["size"]))
        except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
            raise Unavailable("the sandbox's agent stopped answering") from exc
        finally:
            writer.close()

    async def write_file(self, run_id: str, path: str, data: bytes) -> None:
        reader, writer = await self._open(run_id, {"op": "write", "path": path, "size": len(data)})
        try:
            writer.write(data)
            await writer.drain()
            _checked(json.loads(await reader.readline()))
        except (ConnectionError, ValueError) as exc:
            raise Unavailable("the sandbox's agent stopped answering") from exc
        finally:
            writer.close()

    async def stats(self, run_id: str, *, app_only: bool = False) -> WorkloadStats:
        """What the workload uses now; ``app_only``: leaving out its agent (a deployment replica's app)."""
        reply = _checked(await self._call(run_id, {"op": "stats", "appOnly": app_only}))
        return WorkloadStats(processes=int(reply["processes"]), memory_bytes=int(reply["memoryBytes"]),
                             cpu_seconds=int(reply.get("cpuMillis", 0)) / 1000)

    async def watch(self, run_id: str) -> AsyncIterator[dict[str, Any]]:
        """The state of the app a deployment replica's agent supervises: now, then each change.

        Ends when the workload goes away; ``Unavailable`` when it cannot be reached.
        """
        reader, writer = await self._open(run_id, {"op": "watch"})
        try:
            while line := await reader.readline():
                state: dict[str, Any] = json.loads(line)
                yield state
        except (ConnectionError, ValueError):
            return
        finally:
            writer.close()

    async def extend(self, run_id: str, deadline: datetime) -> None:
        run_dir = self._runtime.run_dir(run_id)
        tmp = run_dir.path / (shim.DEADLINE_FILE + ".tmp")
        tmp.write_text(repr(deadline.timestamp()))
        os.replace(tmp, run_dir.path / shim.DEADLINE_FILE)
        if not self._runtime.signal_shim(run_id, signal.SIGUSR1):
            raise Conflict("the sandbox is no longer running")

    def endpoint(self, run_id: str, *, owner: str | None = None) -> Endpoint:
        return Endpoint(unix_socket=str(_sockets_dir(self._runtime.run_dir(run_id)) / BRIDGE_SOCKET))

    async def _call(self, run_id: str, body: dict[str, Any]) -> dict[str, Any]:
        reader, writer = await self._open(run_id, body)
        try:
            reply: dict[str, Any] = json.loads(await reader.readline())
            return reply
        finally:
            writer.close()

    async def _open(self, run_id: str, body: dict[str, Any]) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        path = _sockets_dir(self._runtime.run_dir(run_id)) / CONTROL_SOCKET
        try:
            reader, writer = await open_unix(path)
        except OSError as exc:
            raise Unavailable("the sandbox is not running (its agent cannot be reached)") from exc
        payload = marshal.dumps(body)
        writer.write(len(payload).to_bytes(4, "big") + payload)
        return reader, writer

    async def close(self) -> None:
        for task in list(self._probes):
            task.cancel()


def _checked(reply: dict[str, Any]) -> dict[str, Any]:
    if not reply.get("ok"):
        raise _AGENT_ERRORS.get(int(reply.get("code", 400)), BadRequest)(str(reply.get("message", "refused")))
    return reply


def _listen(run_dir: RunDir) -> Sequence[int]:
    """Bind and listen on the run's two sockets; their fds go to the agent.

    They live in a 0700 directory owned by ``nobody``: the gateway (root) still reaches them, but
    not a sandbox's root, whose capabilities do not cover a uid its user namespace does not map,
    should a sandbox ever see the runs dir.
    """
    sockets = _sockets_dir(run_dir)
    sockets.mkdir(mode=0o700)
    with contextlib.suppress(PermissionError):  # not root: the isolation's view must hide it alone
        os.chown(sockets, _NOBODY, _NOBODY)
    fds = []
    for name in (CONTROL_SOCKET, BRIDGE_SOCKET):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with _short_path(sockets / name) as short:
            sock.bind(short)
        sock.listen(128)
        fds.append(sock.detach())
    return fds


def _sockets_dir(run_dir: RunDir) -> Path:
    return run_dir.path / "sockets"


async def open_unix(path: Path, limit: int = 1 << 16) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``asyncio.open_unix_connection`` for paths longer than a socket address may be."""
    with _short_path(path) as short:
        return await asyncio.open_unix_connection(short, limit=limit)


class _short_path:  # noqa: N801  (a context manager used like a function)
    """A path to ``path`` under 108 bytes, through ``/proc/self/fd`` when the real one is longer."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    def __enter__(self) -> str:
        if len(str(self._path).encode()) < 100:
            return str(self._path)
        self._fd = os.open(self._path.parent, os.O_PATH | os.O_CLOEXEC)
        return f"/proc/self/fd/{self._fd}/{self._path.name}"

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
