from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal, Protocol

import pytest

from mcp_server.config import Settings
from mcp_server.runtime import shim
from mcp_server.runtime.local import LocalRuntime
from tests.runtime.shim_coverage import measured_boot

Isolation = Literal["bwrap", "none"]


class MakeRuntime(Protocol):
    def __call__(self, isolation: Isolation = ..., *, grace_seconds: float = ...) -> LocalRuntime: ...


@pytest.fixture(autouse=True)
def measured_shims(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under coverage, the shims these tests start are measured as well (see ``tests.runtime.shim_coverage``)."""
    config_file = os.environ.get("COVERAGE_PROCESS_START")
    if config_file:
        monkeypatch.setattr(shim, "BOOT", measured_boot(config_file))


@asynccontextmanager
async def local_runtimes(data_dir: Path) -> AsyncIterator[MakeRuntime]:
    """Builds runtimes on ``data_dir``; at the end removes every run (which stops it) and closes them."""
    made: list[LocalRuntime] = []

    def make(isolation: Isolation = "bwrap", *, grace_seconds: float = 0.5) -> LocalRuntime:
        runtime = LocalRuntime(Settings(data_dir=data_dir, isolation=isolation), grace_seconds=grace_seconds)
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        await runtime.close()
    # A fresh runtime adopts whatever still runs, so remove() can stop it as well as delete it.
    cleaner = LocalRuntime(Settings(data_dir=data_dir, isolation="none"))
    runs = Settings(data_dir=data_dir).runs_dir
    for run_dir in sorted(runs.iterdir()) if runs.exists() else ():
        await cleaner.remove(run_dir.name)
    await cleaner.close()


@pytest.fixture
async def make_runtime(tmp_path: Path) -> AsyncIterator[MakeRuntime]:
    async with local_runtimes(tmp_path) as make:
        yield make


@pytest.fixture(params=["bwrap", "none"])
def isolation(request: pytest.FixtureRequest) -> Isolation:
    value: Isolation = request.param
    return value


@pytest.fixture
def runtime(make_runtime: MakeRuntime, isolation: Isolation) -> LocalRuntime:
    return make_runtime(isolation)
