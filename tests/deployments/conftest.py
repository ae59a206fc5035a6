"""Deployments end to end: a real gateway on the local runtime, data dir outside /tmp (as installed)."""

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


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def dep_data_dir() -> Iterator[Path]:
    """Outside /tmp, as a real install: a replica's private /tmp would hide a data dir under /tmp."""
    path = Path(tempfile.mkdtemp(prefix="kubegate-dep-", dir="/var/tmp"))
    yield path
    kill_supervisors(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def dep_gateway(dep_data_dir: Path) -> Iterator[Gateway]:
    gateway = Gateway(dep_data_dir, env_extra=dict(DEPLOY_ENV)).start()
    yield gateway
    gateway.stop()


_users = iter(range(1_000_000))


@pytest.fixture
def dep_key(dep_data_dir: Path) -> str:
    return mint_key(dep_data_dir, user=f"dep{next(_users)}@example.test")


@pytest.fixture
async def rest(dep_gateway: Gateway, dep_key: str, dep_data_dir: Path) -> AsyncIterator[Door]:
    async with open_door("rest", url=dep_gateway.url, stateless_url=dep_gateway.url, key=dep_key,
                         data_dir=dep_data_dir, env=dict(DEPLOY_ENV)) as door:
        yield door


@pytest.fixture(params=DEPLOY_DOORS)
async def dep_door(request: pytest.FixtureRequest, dep_gateway: Gateway, dep_key: str,
                   dep_data_dir: Path) -> AsyncIterator[Door]:
    async with open_door(request.param, url=dep_gateway.url, stateless_url=dep_gateway.url, key=dep_key,
                         data_dir=dep_data_dir, env=dict(DEPLOY_ENV)) as door:
        yield door
