"""A hostile tenant through the real doors: fair shares, fail-closed isolation, and what a task can reach.

Each gateway here keeps its data under /var/lib/kubegate-tests (never /tmp, where a sandbox's
private /tmp would hide it) and runs tasks under real bubblewrap.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from mcp_server.runtime.rundir import remove_tree
from tests.doors import Door, open_door
from tests.gateway import Gateway, mint_key
from tests.runtime.conftest import READONLY_PATHS, SCRATCH_ROOT, TEST_ROOT

PER_USER, TOTAL, OBJECTS = 3, 5, 300


@pytest.fixture
def home() -> Iterator[Path]:
    TEST_ROOT.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="gateway-", dir=TEST_ROOT))
    yield path
    remove_tree(path)


@pytest.fixture
def release() -> Iterator[Path]:
    """A path tasks wait for; the test creates it to let them finish. Runs see it read-only."""
    SCRATCH_ROOT.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="release-", dir=SCRATCH_ROOT))
    directory.chmod(0o755)
    yield directory / "go"
    remove_tree(directory)


@pytest.fixture
def gateway(home: Path) -> Iterator[Gateway]:
    gw = Gateway(home / "data", env_extra={
        "KUBEGATE_MAX_ACTIVE_RUNS_PER_USER": str(PER_USER), "KUBEGATE_MAX_ACTIVE_RUNS": str(TOTAL),
        "KUBEGATE_MAX_OBJECTS_PER_USER": str(OBJECTS), "KUBEGATE_RUN_READONLY_PATHS": READONLY_PATHS,
    }).start(timeout=60)
    yield gw
    gw.stop()


@pytest.fixture
async def rest(gateway: Gateway) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """REST clients for two users, A and B."""
    keys = [mint_key(gateway.data_dir, user=f"{who}@example.test") for who in ("a", "b")]
    async with httpx.AsyncClient(base_url=gateway.url, headers={"Authorization": f"Bearer {keys[0]}"},
                                 timeout=120) as a, \
            httpx.AsyncClient(base_url=gateway.url, headers={"Authorization": f"Bearer {keys[1]}"},
                              timeout=120) as b:
        yield a, b


async def _all_tasks(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/tasks", params=params)).json()
        tasks += page["tasks"]
        cursor = page.get("nextCursor")
        if not cursor:
            return tasks


async def _until(check: Any, timeout: float) -> Any:
    """Poll ``check`` (async, returns a truthy value when done) until it is done, within ``timeout``."""
    with anyio.fail_after(timeout):
        while not (result := await check()):
            await anyio.sleep(0.2)
    return result


async def _wait(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    async def ended() -> dict[str, Any] | None:
        task: dict[str, Any] = (await client.get(f"/api/tasks/{task_id}")).json()["task"]
        return task if task["status"] in ("completed", "failed") else None

    result: dict[str, Any] = await _until(ended, 60)
    return result


async def test_300_tasks_from_one_user_queue_none_is_lost_and_another_user_still_runs(
    rest: tuple[httpx.AsyncClient, httpx.AsyncClient], release: Path
) -> None:
    a, b = rest
    gate = asyncio.Semaphore(16)

    async def create(i: int) -> str:
        command = ["sh", "-c", f"while [ ! -e {release} ]; do sleep 0.05; done; echo done-{i}"]
        async with gate:
            response = await a.post("/api/tasks", json={"name": f"t{i}", "image": "alpine", "command": command})
        assert response.status_code == 201, response.text
        return str(response.json()["task"]["id"])

    ids = await asyncio.gather(*(create(i) for i in range(300)))
    assert len(set(ids)) == 300

    async def capped() -> list[dict[str, Any]] | None:
        tasks = await _all_tasks(a)
        running = [t for t in tasks if t["status"] == "running"]
        return tasks if len(running) == PER_USER else None

    snapshot = await _until(capped, 60)
    assert sum(t["status"] == "pending" for t in snapshot) == 300 - PER_USER  # waiting, not dropped

    other = (await b.post("/api/tasks", json={"name": "b", "image": "alpine", "command": ["echo", "b-ran"]})).json()
    done = await _wait(b, other["task"]["id"])
    assert (done["status"], done["output"]) == ("completed", "b-ran")
    assert sum(t["status"] == "running" for t in await _all_tasks(a)) == PER_USER  # A still held at its cap

    release.touch()

    async def finished() -> list[dict[str, Any]] | None:
        tasks = await _all_tasks(a)
        return tasks if all(t["status"] in ("completed", "failed") for t in tasks) else None

    tasks = await _until(finished, 600)
    by_id = {t["id"]: t for t in tasks}
    assert [by_id[i]["status"] for i in ids] == ["completed"] * 300
    outputs = [(await a.get(f"/api/tasks/{i}")).json()["task"]["output"] for i in ids[::50]]
    assert outputs == [f"done-{n}" for n in range(0, 300, 50)]
    assert all(by_id[i]["startedAt"] >= by_id[i]["createdAt"] for i in ids)  # the order: tests/engine/test_queue.py

    over = await a.post("/api/tasks", json={"name": "over", "image": "alpine", "command": ["true"]})
    assert over.status_code == 403 and over.json()["error"] == "forbidden"
    assert "KUBEGATE_MAX_OBJECTS_PER_USER" in over.json()["message"]
    assert (await a.delete(f"/api/tasks/{ids[0]}")).status_code == 200
    room = await a.post("/api/tasks", json={"name": "room", "image": "alpine", "command": ["true"]})
    assert room.status_code == 201


async def test_healthz_and_the_start_up_line_say_which_isolation_is_in_force(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        runs = (await client.get("/healthz")).json()["runs"]
    assert runs["isolation"] == "bwrap" and runs["runtime"] == "local"
    assert runs["limits"].startswith(("cgroup", "rlimits")) and runs["maxActiveRunsPerUser"] == PER_USER
    assert f"isolation bwrap, limits {runs['limits']}" in gateway.logs()


@pytest.mark.parametrize("kind", ["rest", "mcp-http-session"])
async def test_a_task_reaches_neither_the_gateway_nor_its_data(gateway: Gateway, kind: str) -> None:
    key = mint_key(gateway.data_dir, user="prober@example.test")
    probe = (
        "import socket\n"
        "for host in ('127.0.0.1', '10.0.2.2'):\n"
        " try: socket.create_connection((host, PORT), timeout=3); print('REACHED', host)\n"
        " except OSError: print('unreachable', host)\n"
        "for path in ('DATA/kubegate.db', 'DATA/login_state.key'):\n"
        " try: open(path, 'rb'); print('READ', path)\n"
        " except OSError: print('unreadable', path)\n"
    ).replace("PORT", str(gateway.port)).replace("DATA", str(gateway.data_dir))
    async with open_door(kind, url=gateway.url, stateless_url=gateway.url, key=key, data_dir=gateway.data_dir,
                         env={"KUBEGATE_RUN_READONLY_PATHS": READONLY_PATHS}) as door:
        for network in (False, True):
            log = await _task_log(door, ["python3", "-c", probe], network=network)
            assert "REACHED" not in log and "READ " not in log, log
            assert log.count("unreachable") == 2 and log.count("unreadable") == 2, log


async def _task_log(door: Door, command: list[str], **fields: Any) -> str:
    created = await door.call("tasks_create", {"name": "probe", "image": "alpine", "command": command, **fields})
    assert created.ok, created.body
    done = await door.call("tasks_wait", {"taskId": created.body["task"]["id"], "timeoutSeconds": 60})
    assert done.body["task"]["status"] == "completed", done.body
    return str(done.body["task"]["logs"])


async def test_delete_removes_a_task_that_locked_its_own_directories(
    rest: tuple[httpx.AsyncClient, httpx.AsyncClient], gateway: Gateway
) -> None:
    a, _ = rest
    script = "mkdir -p a/b/c && echo x > a/b/c/f && chmod 0 a/b/c a/b && chmod 500 a . && echo locked"
    task = (await a.post("/api/tasks", json={"name": "lock", "image": "alpine", "command": ["sh", "-c", script]}))
    task_id = task.json()["task"]["id"]
    done = await _wait(a, task_id)
    assert done["output"] == "locked"
    assert (gateway.data_dir / "runs" / task_id / "work" / "a").exists()
    assert (await a.delete(f"/api/tasks/{task_id}")).status_code == 200
    assert not (gateway.data_dir / "runs" / task_id).exists()


async def test_without_bubblewrap_the_gateway_starts_but_refuses_tasks(home: Path) -> None:
    gw = Gateway(home / "nobwrap", env_extra={"PATH": str(home)}).start(timeout=60)
    try:
        async with httpx.AsyncClient(base_url=gw.url) as client:
            assert (await client.get("/healthz")).json()["runs"]["isolation"] == "unavailable"
        assert "isolation unavailable" in gw.logs()
        key = mint_key(gw.data_dir, user="c@example.test")
        for kind in ("rest", "mcp-http-session"):
            async with open_door(kind, url=gw.url, stateless_url=gw.url, key=key, data_dir=gw.data_dir) as door:
                refused = await door.call("tasks_create", {"name": "x", "image": "alpine", "command": ["id"]})
                assert refused.error_status == 503, refused.body
                message = str(refused.body)
                assert "install bubblewrap" in message and "KUBEGATE_ISOLATION=none" in message
                listed = await door.call("tasks_list", {})
                assert listed.body["tasks"] == []
    finally:
        gw.stop()
