"""Fixtures for the Kubernetes runtime: a fake cluster over real HTTP and a runtime pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from k8s.runtime import KubernetesRuntime
from k8s.sim import FakeCluster
from mcp_server.config import Settings
from mcp_server.runtime.base import RunEvent


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


class Events:
    """Reads a runtime's single event stream and hands out the events of one run at a time."""

    def __init__(self, runtime: KubernetesRuntime) -> None:
        self._stream = runtime.events()
        self._seen: list[RunEvent] = []

    async def next(self, run_id: str, *, timeout: float = 20.0) -> RunEvent:
        with anyio.fail_after(timeout):
            for index, event in enumerate(self._seen):
                if event.run_id == run_id:
                    return self._seen.pop(index)
            async for event in self._stream:
                if event.run_id == run_id:
                    return event
                self._seen.append(event)
        raise AssertionError("event stream ended")

    async def exited(self, run_id: str, *, timeout: float = 20.0) -> RunEvent:
        while (event := await self.next(run_id, timeout=timeout)).kind != "exited":
            pass
        return event

    async def close(self) -> None:
        await self._stream.aclose()  # type: ignore[attr-defined]


@pytest.fixture
async def events(runtime: KubernetesRuntime) -> AsyncIterator[Events]:
    reader = Events(runtime)
    yield reader
    await reader.close()

