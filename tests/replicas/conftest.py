"""The end-to-end fixtures, re-pointed at replicas: the doors reach three session-mode replicas
through one round-robin proxy and two stateless ones through another, all on one PostgreSQL
database and one data dir (the local runtime's runs and logs), one of them leading the engine.

Tests that mint keys with ``mint_key(data_dir)`` (no environment of their own) must reach the
same database: a config file (``$XDG_CONFIG_HOME/kubegate/config.toml``) names it for every
kubegate process started while this package's tests run, and the previous environment comes back
after them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.conftest import GATEWAY_READONLY_PATHS
from tests.doors import DOORS, MCP_DOORS, Door, McpDoor, open_door
from tests.gateway import Gateway, free_port
from tests.pg import PgCluster
from tests.roundrobin import RoundRobin

BASE = Path("/var/lib/kubegate-tests")


@pytest.fixture(scope="package")
def shared_database(pg_cluster: PgCluster) -> Iterator[str]:
    url = pg_cluster.create_database()
    config_home = Path(tempfile.mkdtemp(prefix="kubegate-config-"))
    (config_home / "kubegate").mkdir()
    (config_home / "kubegate" / "config.toml").write_text(f'database_url = "{url}"\n')
    before = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(config_home)
    yield url
    if before is None:
        os.environ.pop("XDG_CONFIG_HOME", None)
    else:
        os.environ["XDG_CONFIG_HOME"] = before


@pytest.fixture(scope="package")
def runtime_env(shared_database: str) -> dict[str, str]:
    return {"KUBEGATE_RUNTIME": "local", "KUBEGATE_RUN_READONLY_PATHS": GATEWAY_READONLY_PATHS,
            "KUBEGATE_DATABASE_URL": shared_database}


@pytest.fixture(scope="package")
def data_dir(runtime_env: dict[str, str]) -> Path:
    BASE.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="replicated-", dir=BASE))


def _behind_proxy(data_dir: Path, env: dict[str, str], count: int) -> Iterator[RoundRobin]:
    port = free_port()
    public = {**env, "KUBEGATE_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    replicas = [Gateway(data_dir, env_extra=public).start() for _ in range(count)]
    try:
        with RoundRobin([gw.port for gw in replicas], port) as proxy:
            yield proxy
    finally:
        for gw in replicas:
            gw.stop()


@pytest.fixture(scope="package")
def gateway(data_dir: Path, runtime_env: dict[str, str]) -> Iterator[RoundRobin]:
    """Three replicas, MCP sessions on, behind a proxy with session affinity."""
    yield from _behind_proxy(data_dir, runtime_env, 3)


@pytest.fixture(scope="package")
def stateless_gateway(data_dir: Path, runtime_env: dict[str, str]) -> Iterator[RoundRobin]:
    """Two more replicas serving MCP without sessions, behind a proxy of their own."""
    yield from _behind_proxy(data_dir, {**runtime_env, "KUBEGATE_MCP_STATELESS": "1"}, 2)


# stdio never passes through the proxy (``kubegate stdio`` opens the store itself): through the replicas,
# the suites run on every HTTP door.
HTTP_DOORS = tuple(kind for kind in DOORS if kind != "mcp-stdio")


@pytest.fixture(params=HTTP_DOORS)
async def door(request: pytest.FixtureRequest, gateway: RoundRobin, stateless_gateway: RoundRobin, api_key: str,
               data_dir: Path, runtime_env: dict[str, str]) -> AsyncIterator[Door]:
    async with open_door(request.param, url=gateway.url, stateless_url=stateless_gateway.url, key=api_key,
                         data_dir=data_dir, env=runtime_env) as opened:
        yield opened


@pytest.fixture(params=tuple(kind for kind in MCP_DOORS if kind != "mcp-stdio"))
async def mcp_door(request: pytest.FixtureRequest, gateway: RoundRobin, stateless_gateway: RoundRobin,
                   api_key: str, data_dir: Path, runtime_env: dict[str, str]) -> AsyncIterator[McpDoor]:
    async with open_door(request.param, url=gateway.url, stateless_url=stateless_gateway.url, key=api_key,
                         data_dir=data_dir, env=runtime_env) as opened:
        assert isinstance(opened, McpDoor)
        yield opened
