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
SANDBOX_RUNTIMES = ("local", "kubernetes")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session", params=SANDBOX_RUNTIMES)
def sbx_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The gateway's settings: the local runtime, or the Kubernetes runtime on the fake cluster."""
    if request.param == "local":
        return dict(SANDBOX_ENV)
    kubeconfig: Path = request.getfixturevalue("fake_cluster")
    return {**SANDBOX_ENV, "KUBEGATE_RUNTIME": "kubernetes", "KUBEGATE_KUBECONFIG": str(kubeconfig)}


@pytest.fixture
def local_only(sbx_env: dict[str, str]) -> None:
    """For what only the local runtime has (bubblewrap's views, supervisor files): the fake cluster's Pods
    are host processes, so what they can see says nothing about a real cluster's isolation."""
    if sbx_env["KUBEGATE_RUNTIME"] != "local":
        pytest.skip("local runtime only")


@pytest.fixture(scope="session")
def sbx_data_dir(sbx_env: dict[str, str]) -> Iterator[Path]:
    """Outside /tmp, as a real install: a sandbox's private /tmp would hide a data dir under /tmp."""
    path = Path(tempfile.mkdtemp(prefix=f"kubegate-sbx-{sbx_env['KUBEGATE_RUNTIME']}-", dir="/var/tmp"))
    yield path
    kill_supervisors(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def sbx_gateway(sbx_data_dir: Path, sbx_env: dict[str, str]) -> Iterator[Gateway]:
    gateway = Gateway(sbx_data_dir, env_extra=sbx_env).start()
    yield gateway
    gateway.stop()


_users = iter(range(1_000_000))


@pytest.fixture
def sbx_key(sbx_data_dir: Path) -> str:
    return mint_key(sbx_data_dir, user=f"sbx{next(_users)}@example.test")


@pytest.fixture(params=SANDBOX_DOORS)
async def sbx_door(request: pytest.FixtureRequest, sbx_gateway: Gateway, sbx_key: str,
                   sbx_data_dir: Path, sbx_env: dict[str, str]) -> AsyncIterator[Door]:
    async with open_door(request.param, url=sbx_gateway.url, stateless_url=sbx_gateway.url, key=sbx_key,
                         data_dir=sbx_data_dir, env=sbx_env) as door:
        yield door
