from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal, Protocol

import pytest

from mcp_server.config import Settings
from mcp_server.runtime import shim
from mcp_server.runtime.local import LocalRuntime
from mcp_server.runtime.rundir import remove_tree
from mcp_server.runtime.sandbox import DEFAULT_READONLY
from tests.runtime.shim_coverage import measured_boot
from tests.runtime.support import Handshake

Isolation = Literal["bwrap", "none"]


class MakeRuntime(Protocol):
    def __call__(self, isolation: Isolation = ..., *, grace_seconds: float = ..., **settings: Any) -> LocalRuntime: ...


TEST_ROOT = Path("/var/lib/kubegate-tests")
"""Where test data dirs live: outside /tmp, as a real install's are (a sandbox's /tmp hides /tmp)."""


SCRATCH_ROOT = TEST_ROOT / "scratch"
"""Holds every ``scratch`` dir; the one test path runs see (read-only), besides the system's."""
READONLY_PATHS = ",".join([*DEFAULT_READONLY, sys.base_prefix, str(SCRATCH_ROOT)])
"""``KUBEGATE_RUN_READONLY_PATHS`` for tests: the defaults, this Python (under /root here) and scratch."""


def runtime_settings(data_dir: Path, **fields: Any) -> Settings:
    """Settings for a test runtime on ``data_dir``."""
    fields.setdefault("run_readonly_paths", READONLY_PATHS)
    return Settings(data_dir=data_dir, **fields)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A fresh data dir under ``TEST_ROOT``, removed afterwards."""
    TEST_ROOT.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="data-", dir=TEST_ROOT))
    yield path
    remove_tree(path)


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A directory outside /tmp that runs made by ``make_runtime`` see read-only (FIFOs, fixtures)."""
    SCRATCH_ROOT.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="scratch-", dir=SCRATCH_ROOT))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


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

    def make(isolation: Isolation = "bwrap", *, grace_seconds: float = 0.5, **fields: Any) -> LocalRuntime:
        settings = runtime_settings(data_dir, isolation=isolation, **fields)
        runtime = LocalRuntime(settings, grace_seconds=grace_seconds)
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
async def make_runtime(data_dir: Path) -> AsyncIterator[MakeRuntime]:
    async with local_runtimes(data_dir) as make:
        yield make


@pytest.fixture(params=["bwrap", "none"])
def isolation(request: pytest.FixtureRequest) -> Isolation:
    value: Isolation = request.param
    return value


@pytest.fixture
def runtime(make_runtime: MakeRuntime, isolation: Isolation) -> LocalRuntime:
    return make_runtime(isolation)


@pytest.fixture
def handshake(scratch: Path) -> Iterator[Handshake]:
    gate = Handshake(scratch)
    yield gate
    gate.close()
