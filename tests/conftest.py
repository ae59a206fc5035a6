"""End-to-end fixtures: real gateways on both runtimes, and the doors into them.

The ``runtime`` parameter runs every end-to-end test once on the local runtime and once on the
Kubernetes runtime, the latter against the fake cluster (``python -m k8s.sim``: a real HTTP API
server that validates every object strictly, with a simulated kubelet).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from mcp_server.runtime.sandbox import DEFAULT_READONLY
from tests.doors import DOORS, MCP_DOORS, Door, McpDoor, open_door
from tests.gateway import Gateway, free_port, mint_key
from tests.pg import PgCluster, pg_bin
from tests.runtime.support import Handshake

SCRATCH_ROOT = Path("/var/lib/kubegate-tests/scratch")
"""Holds every ``scratch`` dir (``tests/runtime/conftest.py`` uses the same root)."""
GATEWAY_READONLY_PATHS = ",".join([*DEFAULT_READONLY, str(SCRATCH_ROOT)])
"""What the gateways' runs see read-only: the defaults and the handshake FIFOs."""

RUNTIMES = ("local", "kubernetes")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def fake_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fake Kubernetes cluster in its own process; yields its kubeconfig."""
    kubeconfig = tmp_path_factory.mktemp("cluster") / "kubeconfig"
    proc = subprocess.Popen(
        [sys.executable, "-m", "k8s.sim", "--port", str(free_port()), "--kubeconfig", str(kubeconfig)],
        stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    banner = proc.stdout.readline()
    assert "fake cluster at" in banner, banner
    yield kubeconfig
    proc.terminate()
    leftover, _ = proc.communicate(timeout=30)
    assert "invalid write" not in leftover, f"kubegate wrote objects the Kubernetes schema refuses:\n{leftover}"


# Waits recheck their credential this rarely, so a revocation made by another process (the
# stateless gateway, kubegate stdio, the CLI) can reach them within a test only as a store event.
NO_BACKSTOP = {"KUBEGATE_REVOCATION_RECHECK_SECONDS": "3600"}


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A throwaway PostgreSQL cluster for this test session (``.ci/test`` installs PostgreSQL)."""
    bin_dir = pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    cluster = PgCluster(bin_dir).start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=("sqlite", "postgresql"))
def database_url(request: pytest.FixtureRequest) -> str | None:
    """The store backend a repository test runs on: None for SQLite, else a new PostgreSQL database's URL."""
    if request.param == "sqlite":
        return None
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database()


@pytest.fixture(scope="session", params=RUNTIMES)
def runtime_env(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "local":
        return {"KUBEGATE_RUNTIME": "local", "KUBEGATE_RUN_READONLY_PATHS": GATEWAY_READONLY_PATHS, **NO_BACKSTOP}
    kubeconfig: Path = request.getfixturevalue("fake_cluster")
    return {"KUBEGATE_RUNTIME": "kubernetes", "KUBEGATE_KUBECONFIG": str(kubeconfig), **NO_BACKSTOP}


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory, runtime_env: dict[str, str]) -> Path:
    return tmp_path_factory.mktemp(f"kubegate-{runtime_env['KUBEGATE_RUNTIME']}")


@pytest.fixture(scope="session")
def gateway(data_dir: Path, runtime_env: dict[str, str]) -> Iterator[Gateway]:
    """One real ``kubegate serve`` (MCP sessions on) shared by the end-to-end tests."""
    gw = Gateway(data_dir, env_extra=dict(runtime_env)).start()
    yield gw
    gw.stop()


@pytest.fixture(scope="session")
def stateless_gateway(data_dir: Path, runtime_env: dict[str, str]) -> Iterator[Gateway]:
    """A second server on the same data dir, serving MCP without sessions."""
    gw = Gateway(data_dir, env_extra={**runtime_env, "KUBEGATE_MCP_STATELESS": "1"}).start()
    yield gw
    gw.stop()


_user_counter = iter(range(1_000_000))


@pytest.fixture
def user_email() -> str:
    return f"user{next(_user_counter)}@example.test"


@pytest.fixture
def api_key(data_dir: Path, user_email: str) -> str:
    return mint_key(data_dir, user=user_email)


@pytest.fixture(params=DOORS)
async def door(request: pytest.FixtureRequest, gateway: Gateway, stateless_gateway: Gateway, api_key: str,
               data_dir: Path, runtime_env: dict[str, str]) -> AsyncIterator[Door]:
    async with open_door(request.param, url=gateway.url, stateless_url=stateless_gateway.url, key=api_key,
                         data_dir=data_dir, env=runtime_env) as opened:
        yield opened


@pytest.fixture(params=MCP_DOORS)
async def mcp_door(request: pytest.FixtureRequest, gateway: Gateway, stateless_gateway: Gateway, api_key: str,
                   data_dir: Path, runtime_env: dict[str, str]) -> AsyncIterator[McpDoor]:
    """The MCP doors alone, for what exists only on MCP (progress, log messages, resources)."""
    async with open_door(request.param, url=gateway.url, stateless_url=stateless_gateway.url, key=api_key,
                         data_dir=data_dir, env=runtime_env) as opened:
        assert isinstance(opened, McpDoor)
        yield opened


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A directory the gateways' runs see read-only (``KUBEGATE_RUN_READONLY_PATHS``): FIFOs for handshakes."""
    SCRATCH_ROOT.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="scratch-", dir=SCRATCH_ROOT))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def handshake(scratch: Path) -> Iterator[Handshake]:
    """FIFOs a run says ``ready`` through and waits on for ``go``: the test, not a timer, paces it."""
    gate = Handshake(scratch)
    yield gate
    gate.close()
