"""Fixtures for the Kubernetes runtime: a fake cluster over real HTTP and a runtime pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from k8s.runtime import KubernetesRuntime
from k8s.sim import FakeCluster
from mcp_server.config import Settings
from tests.runtime.support import Events


@pytest.fixture
async def cluster() -> AsyncIterator[FakeCluster]:
    async with FakeCluster() as fake:
        yield fake
        assert fake.invalid_writes == [], "the runtime or the simulator wrote an invalid object"


def make_settings(cluster: FakeCluster, data_dir: Path, *, ttl: int = 3600, **more: object) -> Settings:
    return Settings(data_dir=data_dir, runtime="kubernetes", kubeconfig=cluster.kubeconfig_path,
                    namespace_prefix="kg-", job_ttl_seconds=ttl, **more)  # type: ignore[arg-type]


@pytest.fixture
async def runtime(cluster: FakeCluster, tmp_path: Path) -> AsyncIterator[KubernetesRuntime]:
    rt = KubernetesRuntime(make_settings(cluster, tmp_path))
    yield rt
    await rt.close()


@pytest.fixture
async def events(runtime: KubernetesRuntime) -> AsyncIterator[Events]:
    reader = Events(runtime)
    yield reader
    await reader.close()

