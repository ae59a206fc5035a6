"""What the sandbox and deployment suites share: a real gateway on the local runtime or on the Kubernetes
runtime (the fake cluster in its own process), with its data dir outside /tmp (as installed), and the doors
to it. Each suite's conftest names its own fixtures (``sbx_*``, ``dep_*``) over these helpers."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest

from tests.doors import Door, open_door
from tests.gateway import Gateway

RUNTIMES = ("local", "kubernetes")
DOORS = ("rest", "mcp-http-session", "mcp-stdio")


def runtime_env(request: pytest.FixtureRequest, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` on the runtime ``request.param`` names: the local one, or Kubernetes on the fake cluster."""
    if request.param == "local":
        return dict(base)
    kubeconfig: Path = request.getfixturevalue("fake_cluster")
    return {**base, "KUBEGATE_RUNTIME": "kubernetes", "KUBEGATE_KUBECONFIG": str(kubeconfig)}


def skip_unless_local(env: Mapping[str, str]) -> None:
    """For what only the local runtime has (bubblewrap's views of the host, supervisor files): the fake
    cluster's Pods are host processes, so what they can see says nothing about a real cluster's isolation."""
    if env["KUBEGATE_RUNTIME"] != "local":
        pytest.skip("local runtime only")


def kill_supervisors(data_dir: Path) -> None:
    """SIGKILL the shims of workloads the tests left running under ``data_dir`` (their processes die with them)."""
    marker = str(data_dir / "runs").encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(int(pid), signal.SIGKILL)
        except OSError:
            continue


@contextmanager
def outside_tmp(prefix: str, env: Mapping[str, str]) -> Iterator[Path]:
    """A data dir outside /tmp, as a real install: a workload's private /tmp would hide one under /tmp."""
    path = Path(tempfile.mkdtemp(prefix=f"kubegate-{prefix}-{env['KUBEGATE_RUNTIME']}-", dir="/var/tmp"))
    try:
        yield path
    finally:
        kill_supervisors(path)
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def running_gateway(data_dir: Path, env: Mapping[str, str]) -> Iterator[Gateway]:
    gateway = Gateway(data_dir, env_extra=dict(env)).start()
    try:
        yield gateway
    finally:
        gateway.stop()


@asynccontextmanager
async def door_to(kind: str, gateway: Gateway, key: str, data_dir: Path,
                  env: Mapping[str, str]) -> AsyncIterator[Door]:
    async with open_door(kind, url=gateway.url, stateless_url=gateway.url, key=key, data_dir=data_dir,
                         env=dict(env)) as door:
        yield door
