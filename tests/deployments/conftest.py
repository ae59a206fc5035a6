"""Deployments end to end: a real gateway on the local runtime and on the Kubernetes runtime (the fake cluster
in its own process), data dir outside /tmp (as installed)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.deployments.support import DEPLOY_ENV
from tests.doors import Door, open_door
from tests.gateway import Gateway, mint_key
from tests.sandboxes.support import kill_supervisors

DEPLOY_DOORS = ("rest", "mcp-http-session", "mcp-stdio")
DEPLOY_RUNTIMES = ("local", "kubernetes")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session", params=DEPLOY_RUNTIMES)
def dep_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The gateway's settings: the local runtime, or the Kubernetes runtime on the fake cluster."""
    if request.param == "local":
        return dict(DEPLOY_ENV)
    kubeconfig: Path = request.getfixturevalue("fake_cluster")
    return {**DEPLOY_ENV, "KUBEGATE_RUNTIME": "kubernetes", "KUBEGATE_KUBECONFIG": str(kubeconfig)}


@pytest.fixture
def local_only(dep_env: dict[str, str]) -> None:
    """For what only the local runtime has (bubblewrap's views of the host): the fake cluster's Pods are host
    processes, so what they can see says nothing about a real cluster's isolation."""
    if dep_env["KUBEGATE_RUNTIME"] != "local":
        pytest.skip("local runtime only")


@pytest.fixture(scope="session")
def dep_data_dir(dep_env: dict[str, str]) -> Iterator[Path]:
    """Outside /tmp, as a real install: a replica's private /tmp would hide a data dir under /tmp."""
    path = Path(tempfile.mkdtemp(prefix=f"kubegate-dep-{dep_env['KUBEGATE_RUNTIME']}-", dir="/var/tmp"))
    yield path
    kill_supervisors(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def dep_gateway(dep_data_dir: Path, dep_env: dict[str, str]) -> Iterator[Gateway]:
    gateway = Gateway(dep_data_dir, env_extra=dep_env).start()
    yield gateway
    gateway.stop()


_users = iter(range(1_000_000))


@pytest.fixture
def dep_key(dep_data_dir: Path) -> str:
    return mint_key(dep_data_dir, user=f"dep{next(_users)}@example.test")


@pytest.fixture
async def rest(dep_gateway: Gateway, dep_key: str, dep_data_dir: Path, dep_env: dict[str, str]) -> AsyncIterator[Door]:
    async with open_door("rest", url=dep_gateway.url, stateless_url=dep_gateway.url, key=dep_key,
                         data_dir=dep_data_dir, env=dep_env) as door:
        yield door


@pytest.fixture(params=DEPLOY_DOORS)
async def dep_door(request: pytest.FixtureRequest, dep_gateway: Gateway, dep_key: str,
                   dep_data_dir: Path, dep_env: dict[str, str]) -> AsyncIterator[Door]:
    async with open_door(request.param, url=dep_gateway.url, stateless_url=dep_gateway.url, key=dep_key,
                         data_dir=dep_data_dir, env=dep_env) as door:
        yield door
