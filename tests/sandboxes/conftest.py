"""Sandboxes end to end: a real gateway per runtime (local, and Kubernetes on the fake cluster), data dir
outside /tmp (as installed); the shared plumbing is tests/workloads.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests import workloads
from tests.doors import Door
from tests.gateway import Gateway, mint_key
from tests.sandboxes.support import SANDBOX_ENV

SANDBOX_DOORS = workloads.DOORS
SANDBOX_RUNTIMES = workloads.RUNTIMES


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session", params=SANDBOX_RUNTIMES)
def sbx_env(request: pytest.FixtureRequest) -> dict[str, str]:
    return workloads.runtime_env(request, SANDBOX_ENV)


@pytest.fixture
def local_only(sbx_env: dict[str, str]) -> None:
    workloads.skip_unless_local(sbx_env)


@pytest.fixture(scope="session")
def sbx_data_dir(sbx_env: dict[str, str]) -> Iterator[Path]:
    with workloads.outside_tmp("sbx", sbx_env) as path:
        yield path


@pytest.fixture(scope="session")
def sbx_gateway(sbx_data_dir: Path, sbx_env: dict[str, str]) -> Iterator[Gateway]:
    with workloads.running_gateway(sbx_data_dir, sbx_env) as gateway:
        yield gateway


_users = iter(range(1_000_000))


@pytest.fixture
def sbx_key(sbx_data_dir: Path) -> str:
    return mint_key(sbx_data_dir, user=f"sbx{next(_users)}@example.test")


@pytest.fixture
async def rest(sbx_gateway: Gateway, sbx_key: str, sbx_data_dir: Path, sbx_env: dict[str, str]) -> AsyncIterator[Door]:
    async with workloads.door_to("rest", sbx_gateway, sbx_key, sbx_data_dir, sbx_env) as door:
        yield door


@pytest.fixture(params=SANDBOX_DOORS)
async def sbx_door(request: pytest.FixtureRequest, sbx_gateway: Gateway, sbx_key: str,
                   sbx_data_dir: Path, sbx_env: dict[str, str]) -> AsyncIterator[Door]:
    async with workloads.door_to(request.param, sbx_gateway, sbx_key, sbx_data_dir, sbx_env) as door:
        yield door
