"""A root ``kubegate serve`` told not to use cgroups (``KUBEGATE_RUN_CGROUPS=off``), end to end.

Without a pids cgroup, only ``RLIMIT_NPROC`` caps a run's processes, and it binds only because each
run's bubblewrap runs as a host uid of its own (``KUBEGATE_RUN_UID_RANGE``). Tasks, sandboxes and
deployment replicas all start through that one launcher; each must still start, serve, and stay
out of the gateway's data. The data dir is outside /tmp, as a real install's is.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from mcp_server.runtime.base import SIZES
from tests.deployments import support as deployments
from tests.deployments.support import DEPLOY_ENV, HTTP_SERVER
from tests.doors import Door, open_door
from tests.gateway import Gateway, mint_key
from tests.sandboxes import support as sandboxes
from tests.sandboxes.support import SANDBOX_ENV, kill_supervisors

FIRST, LAST = 200000, 265535
FORK = ("import os, time\nn = 0\ntry:\n    while n < 400:\n        if os.fork() == 0:\n"
        "            time.sleep(30); os._exit(0)\n        n += 1\nexcept OSError as e:\n"
        "    print('refused:', e.strerror)\nprint('forked', n)\n")

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/usr/bin/python3"),
                                reason="needs a root gateway and the system's python3")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def root_gateway() -> Iterator[Gateway]:
    data_dir = Path(tempfile.mkdtemp(prefix="kubegate-nocg-", dir="/var/tmp"))
    env = {**SANDBOX_ENV, **DEPLOY_ENV, "KUBEGATE_RUN_CGROUPS": "off"}
    gateway = Gateway(data_dir, env_extra=env).start(timeout=60)
    yield gateway
    gateway.stop()
    kill_supervisors(data_dir)
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(params=["rest", "mcp-stdio"])
async def door(request: pytest.FixtureRequest, root_gateway: Gateway) -> AsyncIterator[Door]:
    key = mint_key(root_gateway.data_dir, user=f"nocg{uuid.uuid4().hex[:8]}@example.test")
    async with open_door(request.param, url=root_gateway.url, stateless_url=root_gateway.url, key=key,
                         data_dir=root_gateway.data_dir, env={**SANDBOX_ENV, **DEPLOY_ENV,
                                                              "KUBEGATE_RUN_CGROUPS": "off"}) as opened:
        yield opened


def _host_uids(marker: str) -> set[int]:
    """The host uids (real, effective, saved, fs) of the processes whose command line holds ``marker``."""
    uids: set[int] = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                status = Path(f"/proc/{pid}/status").read_text()
                uids |= {int(f) for line in status.splitlines() if line.startswith("Uid:") for f in line.split()[1:]}
        except OSError:
            continue
    return uids


async def _await_uids(marker: str) -> set[int]:
    with anyio.fail_after(30):
        while not (uids := _host_uids(marker)):
            await anyio.sleep(0.05)
    return uids


async def test_healthz_says_processes_are_capped_per_run(root_gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=root_gateway.url) as client:
        runs = (await client.get("/healthz")).json()["runs"]
    assert runs["limits"].startswith("rlimits (processes capped per run"), runs
    assert f"limits {runs['limits']}" in root_gateway.logs()


async def test_a_small_task_is_refused_processes_past_its_cap(door: Door) -> None:
    command = ["sh", "-c", 'python3 -c "$1"; echo done', "sh", FORK]
    created = await door.call("tasks_create", {"name": "forks", "image": "alpine", "command": command,
                                               "size": "small"})
    assert created.ok, created.body
    done = await door.call("tasks_wait", {"taskId": created.body["task"]["id"], "timeoutSeconds": 60})
    task = done.body["task"]
    logs = str(task["logs"])
    assert task["status"] == "completed" and "refused: Resource temporarily unavailable" in logs, task
    assert int(logs.split("forked")[-1].split()[0]) < SIZES["small"].max_pids, logs


async def test_a_sandbox_starts_execs_and_runs_as_its_own_host_uid(door: Door, root_gateway: Gateway) -> None:
    sid = (await sandboxes.create(door, "nocg", timeout="10m"))["id"]
    try:
        await sandboxes.wait_status(door, sid, "running")
        marker = f"{uuid.uuid4().int % 10**6 + 1000}.5"
        db = root_gateway.data_dir / "kubegate.db"
        script = f"id -u; cat {db} 2>/dev/null && echo READ-DB; sleep {marker} >/dev/null 2>&1 & echo started"
        body = await sandboxes.exec_ok(door, sid, script)
        assert body["stdout"].split() == ["65534", "started"], body
        uids = await _await_uids(marker)
        assert len(uids) == 1 and FIRST <= uids.pop() <= LAST
    finally:
        await door.call("sandboxes_delete", {"sandboxId": sid})


async def test_a_deployment_serves_as_its_own_host_uid(door: Door, root_gateway: Gateway) -> None:
    marker = f"nocg-{uuid.uuid4().hex[:8]}"
    command = ["sh", "-c", f"{' '.join(HTTP_SERVER)}; : {marker}"]
    created = await deployments.create(door, image="python:3.12-slim", port=9000, command=command)
    try:
        await deployments.wait_status(door, created["name"], "Ready")
        served = await deployments.wait_served(root_gateway.url, created["url"], "Directory listing")
        assert "Directory listing" in served
        uids = await _await_uids(marker)
        assert len(uids) == 1 and FIRST <= uids.pop() <= LAST
    finally:
        await door.call("deployments_delete", {"name": created["name"]})
