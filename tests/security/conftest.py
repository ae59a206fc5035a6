from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.gateway import Gateway, free_port

StartGateway = Callable[..., Gateway]


@pytest.fixture(scope="module")
def start_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartGateway]:
    """Start real ``kubegate serve`` processes, each on its own data dir, with extra settings."""
    started: list[Gateway] = []

    def start(port: int | None = None, **env: str) -> Gateway:
        extra = {f"KUBEGATE_{k.upper()}": v for k, v in env.items()}
        gw = Gateway(tmp_path_factory.mktemp("security"), env_extra=extra, port=port or free_port())
        started.append(gw.start())
        return gw

    yield start
    for gw in started:
        gw.stop()
