"""A gateway that loads examples/templates.yaml and knows one administrator, and doors into it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from tests.doors import DOORS, Door, open_door
from tests.gateway import Gateway

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ADMIN = "admin@example.test"
OpenAs = Callable[[str], AbstractAsyncContextManager[Door]]


@pytest.fixture(scope="module")
def tpl_env() -> dict[str, str]:
    return {"KUBEGATE_TEMPLATES_FILE": str(EXAMPLES / "templates.yaml"), "KUBEGATE_ADMIN_EMAILS": ADMIN}


@pytest.fixture(scope="module")
def tpl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("templates")


@pytest.fixture(scope="module")
def tpl_gateway(tpl_dir: Path, tpl_env: dict[str, str]) -> Iterator[Gateway]:
    gw = Gateway(tpl_dir, env_extra=tpl_env).start()
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def tpl_stateless(tpl_dir: Path, tpl_env: dict[str, str], tpl_gateway: Gateway) -> Iterator[Gateway]:
    gw = Gateway(tpl_dir, env_extra={**tpl_env, "KUBEGATE_MCP_STATELESS": "1"}).start()
    yield gw
    gw.stop()


@pytest.fixture(params=DOORS)
def open_as(request: pytest.FixtureRequest, tpl_gateway: Gateway, tpl_stateless: Gateway, tpl_dir: Path,
            tpl_env: dict[str, str]) -> OpenAs:
    """Opens this test's door with a given key (the same door kind for every key in one test)."""

    def opener(key: str) -> AbstractAsyncContextManager[Door]:
        return open_door(request.param, url=tpl_gateway.url, stateless_url=tpl_stateless.url, key=key,
                         data_dir=tpl_dir, env=tpl_env)

    return opener
