"""One harness per implementation of the Runtime protocol, so every contract test runs on each.

A harness builds runtimes on one host (a second runtime on the same host is the gateway after a
restart), gates a run can wait at, and runs that do what a test says: a shell script on the real
runtimes (``LocalRuntime`` under real bubblewrap, ``KubernetesRuntime`` through the official
client on the fake cluster), a ``Script`` on the double.
"""

from __future__ import annotations

import shlex
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import pytest

from k8s.runtime import KubernetesRuntime
from k8s.sim import FakeCluster
from mcp_server.runtime.base import RunSpec, Runtime
from tests.k8s.conftest import make_settings
from tests.runtime.conftest import local_runtimes
from tests.runtime.double import Gate, Script, ScriptedHost
from tests.runtime.support import Events, Handshake, sh, spec


class Gating(Protocol):
    async def ready(self) -> None: ...

    def go(self) -> None: ...


class Harness:
    """Runtimes on one host and runs that write ``logs``, wait at ``gate``, write ``output`` and exit."""

    def __init__(self, make: Callable[[], Runtime], scratch: Path) -> None:
        self._make = make
        self._scratch = scratch
        self._readers: list[Events] = []
        self._gates: list[Handshake] = []

    def runtime(self) -> Runtime:
        return self._make()

    def events(self, runtime: Runtime) -> Events:
        reader = Events(runtime)
        self._readers.append(reader)
        return reader

    def gate(self) -> Gating:
        gate = Handshake(self._scratch)
        self._gates.append(gate)
        return gate

    def run(self, *, logs: str = "", output: str | None = None, exit_code: int = 0, gate: Gating | None = None,
            **fields: Any) -> RunSpec:
        steps = [f"printf %s {shlex.quote(logs)}"]
        if isinstance(gate, Handshake):
            steps.append(gate.script().rstrip("; "))
        if output is not None:
            steps.append(f'printf %s {shlex.quote(output)} > "$KUBEGATE_OUTPUT"')
        return sh("; ".join([*steps, f"exit {exit_code}"]), **fields)

    async def close(self) -> None:
        for reader in self._readers:
            await reader.close()
        for gate in self._gates:
            gate.close()


class ScriptedHarness(Harness):
    def __init__(self, host: ScriptedHost, scratch: Path) -> None:
        super().__init__(host.runtime, scratch)
        self.host = host

    def gate(self) -> Gating:
        return Gate()

    def run(self, *, logs: str = "", output: str | None = None, exit_code: int = 0, gate: Gating | None = None,
            **fields: Any) -> RunSpec:
        run = spec(["scripted"], **fields)
        self.host.script(run.run_id, Script(logs, output, exit_code, gate if isinstance(gate, Gate) else None))
        return run

    async def close(self) -> None:
        await super().close()
        await self.host.close()


@asynccontextmanager
async def _kubernetes(tmp_path: Path, scratch: Path) -> AsyncIterator[Harness]:
    async with FakeCluster() as cluster:
        made: list[KubernetesRuntime] = []

        def make() -> Runtime:
            made.append(KubernetesRuntime(make_settings(cluster, tmp_path)))
            return made[-1]

        harness = Harness(make, scratch)
        yield harness
        await harness.close()
        for runtime in made:
            await runtime.close()
        assert cluster.invalid_writes == [], "the runtime or the simulator wrote an invalid object"


@pytest.fixture(params=["local", "kubernetes", "scripted"])
async def harness(request: pytest.FixtureRequest, tmp_path: Path, data_dir: Path,
                  scratch: Path) -> AsyncIterator[Harness]:
    if request.param == "local":
        async with local_runtimes(data_dir) as make_runtime:
            harness = Harness(lambda: make_runtime("bwrap"), scratch)
            yield harness
            await harness.close()
    elif request.param == "kubernetes":
        async with _kubernetes(tmp_path, scratch) as harness:
            yield harness
    else:
        harness = ScriptedHarness(ScriptedHost(), scratch)
        yield harness
        await harness.close()

