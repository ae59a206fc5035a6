"""Sandboxes end to end: a real gateway on the local runtime, data dir outside /tmp (as installed)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.doors import Door, open_door
from tests.gateway import Gateway, mint_key
from tests.sandboxes.support import SANDBOX_ENV, kill_supervisors

SANDBOX_DOORS = ("rest", "mcp-http-session", "mcp-stdio")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def sbx_data_dir() -> Iterator[Path]:
    """Outside /tmp, as a real install: a sandbox's private /tmp would hide a data dir under /tmp."""
    path = Path(tempfile.mkdtemp(prefix="kubegate-sbx-", dir="/var/tmp"))
    yield path
    kill_supervisors(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def sbx_gateway(sbx_data_dir: Path) -> Iterator[Gateway]:
    gateway = Gateway(sbx_data_dir, env_extra=dict(SANDBOX_ENV)).start()
    yield gateway
    gateway.stop()


_users = iter(range(1_000_000))


@pytest.fixture
def sbx_key(sbx_data_dir: Path) -> str:
    return mint_key(sbx_data_dir, user=f"sbx{next(_users)}@example.test")


@pytest.fixture(params=SANDBOX_DOORS)
async def sbx_door(request: pytest.FixtureRequest, sbx_gateway: Gateway, sbx_key: str,
                   sbx_data_dir: Path) -> AsyncIterator[Door]:
    async with open_door(request.param, url=sbx_gateway.url, stateless_url=sbx_gateway.url, key=sbx_key,
                         data_dir=sbx_data_dir, env=dict(SANDBOX_ENV)) as door:
        yield door
