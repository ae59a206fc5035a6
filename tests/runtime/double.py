"""The one test double of the Runtime protocol: runs that do what a test scripts, in memory.

A ``ScriptedHost`` stands for the machine or cluster: its runs outlive any one
``ScriptedRuntime`` built on it, as processes outlive a gateway, so a second runtime on the same
host can ``recover`` them. A run follows its ``Script`` (write logs, wait at a ``Gate`` until the
test releases it, then write its output and exit), or, without one, is held until the test
calls ``finish``. Deadlines, cancel, remove and recover behave as the real runtimes do: the
contract suite (``tests/runtime/contract``) runs this double next to them, so it cannot drift.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mcp_server.errors import Conflict, Unavailable
from mcp_server.runtime.base import ExitReason, RunEvent, RunSpec, cap_output, decode_tail, last_line

SIGTERM_EXIT = 143
"""How a run ends when stopped by SIGTERM, which is what both real runtimes send first."""


class Gate:
    """Where a scripted run waits: ``ready`` once it got there, ``go`` to let it on."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.released = asyncio.Event()

    async def ready(self) -> None:
        await self.reached.wait()

    def go(self) -> None:
        self.released.set()


@dataclass(frozen=True)
class Script:
    """What a run does: its logs, then (past ``gate``) its output file and exit code."""

    logs: str = ""
    output: str | None = None
    exit_code: int = 0
    gate: Gate | None = None


@dataclass(eq=False)
class _Run:
    spec: RunSpec
    log: bytearray = field(default_factory=bytearray)
    finished: asyncio.Future[tuple[int, str | None]] = field(default_factory=asyncio.Future)
    result: RunEvent | None = None
    watcher: ScriptedRuntime | None = None
    task: asyncio.Task[None] | None = None


class ScriptedHost:
    """Where scripted runs live; ``close`` stops them all (the end of a test)."""

    def __init__(self) -> None:
        self.runs: dict[str, _Run] = {}
        self.scripts: dict[str, Script] = {}
        self.started: list[RunSpec] = []

    def runtime(self) -> ScriptedRuntime:
        return ScriptedRuntime(self)

    def script(self, run_id: str, script: Script) -> None:
        """What ``run_id`` will do once started; a run without a script waits for ``finish``."""
        self.scripts[run_id] = script

    def finish(self, run_id: str, exit_code: int = 0, output: str | None = None) -> None:
        """End a held run as if its process exited with ``exit_code`` after writing ``output``."""
        self.runs[run_id].finished.set_result((exit_code, output))

    async def close(self) -> None:
        tasks = [run.task for run in self.runs.values() if run.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class ScriptedRuntime:
    """A gateway's view of a ``ScriptedHost``: implements ``Runtime``."""

    name = "scripted"

    def __init__(self, host: ScriptedHost | None = None) -> None:
        self.host = host if host is not None else ScriptedHost()
        self.started: list[RunSpec] = []
        self._events: asyncio.Queue[RunEvent | None] = asyncio.Queue()
        self._closed = False

    async def start(self, spec: RunSpec) -> None:
        if self._closed:
            raise Unavailable("the scripted runtime is closed")
        if spec.run_id in self.host.runs:
            raise Conflict(f"run {spec.run_id} already exists")
        run = _Run(spec, watcher=self)
        self.host.runs[spec.run_id] = run
        self.started.append(spec)
        self.host.started.append(spec)
        self._emit(RunEvent(spec.run_id, "started", _now()))
        run.task = asyncio.get_running_loop().create_task(self._live(run, self.host.scripts.pop(spec.run_id, None)))

    async def _live(self, run: _Run, script: Script | None) -> None:
        try:
            async with asyncio.timeout(run.spec.timeout_seconds):
                code, output = await self._follow(run, script)
        except TimeoutError:
            self._end(run, "timeout", SIGTERM_EXIT, f"timed out after {run.spec.timeout_seconds:g}s")
        except asyncio.CancelledError:
            self._end(run, "cancelled", SIGTERM_EXIT, None)
            raise
        else:
            self._end(run, "completed" if code == 0 else "error", code,
                      None if code == 0 else f"exited with code {code}", output)

    @staticmethod
    async def _follow(run: _Run, script: Script | None) -> tuple[int, str | None]:
        if script is None:
            return await run.finished
        run.log += script.logs.encode()
        if script.gate is not None:
            script.gate.reached.set()
            await script.gate.released.wait()
        return script.exit_code, script.output

    def _end(self, run: _Run, reason: ExitReason, code: int, message: str | None, output: str | None = None) -> None:
        text = cap_output(output) if output is not None else last_line(decode_tail(bytes(run.log), cut=False))
        run.result = RunEvent(run.spec.run_id, "exited", _now(), code, text, reason, message)
        if run.watcher is not None:
            run.watcher._emit(run.result)

    def _emit(self, event: RunEvent) -> None:
        if not self._closed:
            self._events.put_nowait(event)

    async def cancel(self, run_id: str) -> None:
        run = self.host.runs.get(run_id)
        if run is not None and run.task is not None and run.result is None:
            run.task.cancel()
            await asyncio.gather(run.task, return_exceptions=True)

    async def remove(self, run_id: str) -> None:
        run = self.host.runs.pop(run_id, None)
        if run is not None:
            run.watcher = None  # forgotten: its end is nobody's event
            if run.task is not None:
                run.task.cancel()
                await asyncio.gather(run.task, return_exceptions=True)

    def read_logs(self, run_id: str, *, tail: int) -> str:
        run = self.host.runs.get(run_id)
        return "" if run is None else decode_tail(bytes(run.log[-tail:] if tail else b""), cut=True)

    async def events(self) -> AsyncIterator[RunEvent]:
        while (event := await self._events.get()) is not None:
            yield event
        self._events.put_nowait(None)

    async def recover(self, active: Sequence[RunSpec]) -> None:
        for spec in active:
            run = self.host.runs.get(spec.run_id)
            if run is None:
                self._emit(RunEvent(spec.run_id, "exited", _now(), reason="lost", message="no such run"))
            elif run.result is not None:
                self._emit(run.result)
            else:
                run.watcher = self

    async def close(self) -> None:
        """Stop reporting; the host's runs keep going, as processes outlive a gateway."""
        self._closed = True
        for run in self.host.runs.values():
            if run.watcher is self:
                run.watcher = None
        self._events.put_nowait(None)


def _now() -> datetime:
    return datetime.now(UTC)
