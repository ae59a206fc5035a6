"""Deployments end to end: a real gateway per runtime (local, and Kubernetes on the fake cluster), data dir
outside /tmp (as installed); the shared plumbing is tests/workloads.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests import workloads
from tests.deployments.support import DEPLOY_ENV
from tests.doors import Door
from tests.gateway import Gateway, mint_key

DEPLOY_DOORS = workloads.DOORS
DEPLOY_RUNTIMES = workloads.RUNTIMES


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session", params=DEPLOY_RUNTIMES)
def dep_env(request: pytest.FixtureRequest) -> dict[str, str]:
    return workloads.runtime_env(request, DEPLOY_ENV)


@pytest.fixture
def local_only(dep_env: dict[str, str]) -> None:
    workloads.skip_unless_local(dep_env)


@pytest.fixture(scope="session")
def dep_data_dir(dep_env: dict[str, str]) -> Iterator[Path]:
    with workloads.outside_tmp("dep", dep_env) as path:
        yield path


@pytest.fixture(scope="session")
def dep_gateway(dep_data_dir: Path, dep_env: dict[str, str]) -> Iterator[Gateway]:
    with workloads.running_gateway(dep_data_dir, dep_env) as gateway:
        yield gateway


_users = iter(range(1_000_000))


@pytest.fixture
def dep_key(dep_data_dir: Path) -> str:
    return mint_key(dep_data_dir, user=f"dep{next(_users)}@example.test")


@pytest.fixture
async def rest(dep_gateway: Gateway, dep_key: str, dep_data_dir: Path, dep_env: dict[str, str]) -> AsyncIterator[Door]:
    async with workloads.door_to("rest", dep_gateway, dep_key, dep_data_dir, dep_env) as door:
        yield door


@pytest.fixture(params=DEPLOY_DOORS)
async def dep_door(request: pytest.FixtureRequest, dep_gateway: Gateway, dep_key: str,
                   dep_data_dir: Path, dep_env: dict[str, str]) -> AsyncIterator[Door]:
    async with workloads.door_to(request.param, dep_gateway, dep_key, dep_data_dir, dep_env) as door:
        yield door
