from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.doors import DOORS, Door, open_door
from tests.gateway import Gateway, mint_key


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kubegate-data")


@pytest.fixture(scope="session")
def gateway(data_dir: Path) -> Iterator[Gateway]:
    """One real ``kubegate serve`` (MCP sessions on) shared by the end-to-end tests."""
    gw = Gateway(data_dir).start()
    yield gw
    gw.stop()


@pytest.fixture(scope="session")
def stateless_gateway(data_dir: Path) -> Iterator[Gateway]:
    """A second server on the same data dir, serving MCP without sessions."""
    gw = Gateway(data_dir, env_extra={"KUBEGATE_MCP_STATELESS": "1"}).start()
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
               data_dir: Path) -> AsyncIterator[Door]:
    async with open_door(request.param, url=gateway.url, stateless_url=stateless_gateway.url, key=api_key,
                         data_dir=data_dir) as opened:
        yield opened
