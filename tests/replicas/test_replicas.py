"""Three real ``kubegate serve`` replicas on one PostgreSQL, behind a round-robin proxy.

Every request opens its own connection, so consecutive requests land on different replicas: a task
created on a follower is started by the leader, and a wait on a third replica hears it end. The
leader is SIGKILLed in the middle of a 20-step workflow and of a running task; a rolling restart
runs under a steady stream of requests; two replicas start together on an empty database.
Sandboxes run on the same replicas (``tests.replicas.sandboxes``).

A deployment is kept by the leader alone and served by every replica: created through the proxy, then
read, scaled, updated and deleted through followers (REST and the MCP shorthand), each replica asked
directly for its status, URL, logs and metrics; the example app's processes on the host are counted (no
second keeper starts replicas of its own). The leader is SIGKILLed: the next one keeps the app and records
the restart of an app process killed after that. A follower SIGKILLed the moment it answered a create
leaves nothing undone: the app becomes Ready in the shared database with no request asking.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from mcp_server.store.db import migrations
from tests.conftest import SCRATCH_ROOT
from tests.deployments.support import app_pids
from tests.gateway import Gateway, free_port, mint_key
from tests.pg import PgCluster
from tests.replicas.apps import SLOW_START, exactly, ready_everywhere, restarted_after, stored_status, tool, until
from tests.replicas.sandboxes import (  # noqa: F401  (run here, on this module's replicas)
    create,
    run,
    test_a_sandbox_made_through_any_replica_is_served_by_every_replica,
    test_sandboxes_outlive_a_killed_leader,
    until_status,
)
from tests.replicas.support import BASE, DEADLINE, PROXY_PORT, USER, Client, leaders, one_leader, replica_env
from tests.roundrobin import RoundRobin
from tests.runtime.support import Handshake

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    directory = Path(tempfile.mkdtemp(prefix="redis-"))
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(directory)], stdout=subprocess.DEVNULL)
    end = time.monotonic() + DEADLINE
    while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout.strip() != b"PONG":
        assert time.monotonic() < end and proc.poll() is None, "redis-server did not start"
        time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def cluster_url(pg_cluster: PgCluster) -> str:
    return pg_cluster.create_database()


@pytest.fixture(scope="module")
def replicas(cluster_url: str, redis_url: str) -> Iterator[list[Gateway]]:
    BASE.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="replicas-", dir=BASE))  # shared: the runs' supervisors and logs
    started = [Gateway(data_dir, env_extra=replica_env(cluster_url, redis_url)).start() for _ in range(3)]
    yield started
    for gw in started:
        gw.stop()


@pytest.fixture(scope="module")
def proxy(replicas: list[Gateway]) -> Iterator[RoundRobin]:
    with RoundRobin([gw.port for gw in replicas], PROXY_PORT) as rr:
        yield rr


@pytest.fixture(scope="module")
def key(replicas: list[Gateway], cluster_url: str) -> str:
    return mint_key(replicas[0].data_dir, user=USER, env=replica_env(cluster_url))


@pytest.fixture
def journal() -> Iterator[tuple[Path, int]]:
    """A FIFO every workflow step writes its name into: what ran, and how often."""
    SCRATCH_ROOT.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="journal-", dir=SCRATCH_ROOT))
    directory.chmod(0o755)
    path = directory / "journal"
    os.mkfifo(path)
    os.chmod(path, 0o666)
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    yield path, fd
    os.close(fd)


def test_one_replica_leads_and_tasks_work_through_any(replicas: list[Gateway], proxy: RoundRobin, key: str) -> None:
    assert len(leaders(replicas)) == 1
    client = Client(proxy.url, key)
    made = []
    for code in range(6):
        created = client.request("POST", "/api/tasks", json={
            "name": f"t{code}", "image": "alpine", "command": ["sh", "-c", f"echo out{code}; exit {code}"]})
        assert created.status_code == 201, created.text
        made.append((code, created.json()["task"]["id"]))
    for code, task_id in made:
        task = client.until_done("task", task_id)
        assert (task["exitCode"], task["output"]) == (code, f"out{code}")
        assert task["status"] == ("completed" if code == 0 else "failed")
    assert {gw.port for gw in replicas} <= set(proxy.chosen)  # every replica took requests


def test_a_workflow_made_on_any_replica_passes_outputs(replicas: list[Gateway], proxy: RoundRobin, key: str) -> None:
    client = Client(proxy.url, key)
    created = client.request("POST", "/api/workflows", json={"name": "diamond", "steps": [
        {"name": "a", "image": "alpine", "command": ["sh", "-c", "echo A"]},
        {"name": "b", "image": "alpine", "command": ["sh", "-c", "echo B{{steps.a.output}}"], "dependsOn": ["a"]},
        {"name": "c", "image": "alpine", "command": ["sh", "-c", "echo C"], "dependsOn": ["a"]},
        {"name": "d", "image": "alpine", "command": ["sh", "-c", 'echo "$KUBEGATE_OUTPUT_B$KUBEGATE_OUTPUT_C"'],
         "dependsOn": ["b", "c"]},
    ]})
    assert created.status_code == 201, created.text
    done = client.until_done("workflow", created.json()["workflow"]["id"])
    assert done["status"] == "completed"
    steps = {s["name"]: s for s in client.request("GET", f"/api/workflows/{done['id']}").json()["workflow"]["steps"]}
    assert steps["d"]["output"] == "BAC"


def test_the_leader_killed_mid_workflow_and_mid_task(replicas: list[Gateway], proxy: RoundRobin, key: str,
                                                      scratch: Path, journal: tuple[Path, int]) -> None:
    client = Client(proxy.url, key)
    journal_path, journal_fd = journal
    step_gate, task_gate = Handshake(scratch), Handshake(scratch)
    steps = []
    for i in range(20):
        then = f"echo s{i} > {journal_path}"
        script = step_gate.script(then) if i == 5 else then
        steps.append({"name": f"s{i}", "image": "alpine", "command": ["sh", "-c", script],
                      **({"dependsOn": [f"s{i - 1}"]} if i else {})})
    workflow = client.request("POST", "/api/workflows", json={"name": "chain", "steps": steps})
    task = client.request("POST", "/api/tasks", json={"name": "held", "image": "alpine",
                                                      "command": ["sh", "-c", task_gate.script("exit 7")]})
    assert workflow.status_code == 201 and task.status_code == 201
    _wait_ready(step_gate)
    _wait_ready(task_gate)

    leader = one_leader(replicas)
    leader.stop(signal.SIGKILL)
    survivor = one_leader([gw for gw in replicas if gw is not leader])
    assert survivor is not leader
    step_gate.go()
    task_gate.go()
    done = client.until_done("workflow", workflow.json()["workflow"]["id"])
    ended = client.until_done("task", task.json()["task"]["id"])
    leader.start()  # back, as a follower, for the tests after this one

    assert done["status"] == "completed"
    assert (ended["status"], ended["exitCode"]) == ("failed", 7)
    ran = os.read(journal_fd, 65536).decode().split()
    assert sorted(ran) == sorted(f"s{i}" for i in range(20))  # every step, none twice
    assert len(leaders(replicas)) == 1
    step_gate.close()
    task_gate.close()


def _wait_ready(gate: Handshake) -> None:
    import anyio

    anyio.run(gate.ready)


def test_a_rolling_restart_under_steady_requests_loses_nothing(replicas: list[Gateway], proxy: RoundRobin,
                                                                key: str) -> None:
    client = Client(proxy.url, key)
    statuses: list[int] = []
    created: list[str] = []
    stop = threading.Event()

    def steady() -> None:
        while not stop.is_set():
            made = client.request("POST", "/api/tasks", json={"name": "r", "image": "alpine",
                                                              "command": ["true"]})
            statuses.append(made.status_code)
            if made.status_code == 201:
                created.append(made.json()["task"]["id"])
            statuses.append(client.request("GET", "/api/tasks", params={"limit": 5}).status_code)

    worker = threading.Thread(target=steady)
    worker.start()
    try:
        for gw in replicas:
            gw.stop(signal.SIGTERM)
            gw.start()
    finally:
        stop.set()
        worker.join()
    assert len(created) >= len(replicas) and all(s < 500 for s in statuses), statuses
    assert set(statuses) <= {200, 201}
    for task_id in created:
        assert client.until_done("task", task_id)["status"] == "completed"
    assert len(leaders(replicas)) == 1


def test_keys_audit_and_the_event_stream_are_the_same_through_every_replica(replicas: list[Gateway],
                                                                           key: str) -> None:
    first, second, third = replicas
    bearer = {"Authorization": f"Bearer {key}"}
    made = httpx.post(f"{first.url}/api/api-keys", json={"name": "minted-on-first", "scopes": ["tasks:read"]},
                      headers=bearer, timeout=30)
    assert made.status_code == 201, made.text
    minted = made.json()["apiKey"]
    assert httpx.get(f"{second.url}/api/tasks", headers={"Authorization": f"Bearer {minted['key']}"},
                     timeout=30).status_code == 200
    listed = httpx.get(f"{third.url}/api/api-keys", headers=bearer, timeout=30).json()["apiKeys"]
    assert next(k for k in listed if k["id"] == minted["id"])["lastUsedAt"] is not None
    audit = httpx.get(f"{third.url}/api/audit", headers=bearer, params={"limit": 50}, timeout=30).json()
    assert any(e["path"] == "/api/api-keys" and e["method"] == "POST" for e in audit["events"]), audit

    with httpx.Client(timeout=30) as client, client.stream("GET", f"{first.url}/api/events", headers=bearer) as events:
        lines = events.iter_lines()
        assert next(lines).startswith("retry:")
        created = httpx.post(f"{second.url}/api/tasks", headers=bearer, timeout=30,
                             json={"name": "seen", "image": "alpine", "command": ["true"]}).json()["task"]
        for line in lines:  # ends when the server closes the stream; the test's timeout bounds it
            if line.startswith("data:") and created["id"] in line:
                assert json.loads(line[5:])["object"]["id"] == created["id"]
                break


def test_a_login_session_made_on_one_replica_works_on_the_others_and_ends_on_all(replicas: list[Gateway]) -> None:
    with httpx.Client(timeout=30) as browser:  # one cookie jar: cookies are per host, not per port
        login = browser.post(f"{replicas[0].url}/auth/dev-login", json={"email": "browser@example.test"})
        assert login.status_code == 200, login.text
        for gw in replicas:
            assert browser.get(f"{gw.url}/api/tasks").status_code == 200
        kept = dict(browser.cookies)
        origin = {"Origin": f"http://127.0.0.1:{PROXY_PORT}"}  # the public origin: the CSRF check passes
        assert browser.post(f"{replicas[1].url}/auth/logout", headers=origin).status_code == 204
    for gw in replicas:  # the old cookie, replayed: the session is gone from the shared store
        assert httpx.get(f"{gw.url}/api/tasks", cookies=kept, timeout=30).status_code == 401


def test_a_session_on_another_replica_is_not_found_not_a_500(replicas: list[Gateway], key: str) -> None:
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json, text/event-stream"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    opened = httpx.post(f"{replicas[0].url}/api/mcp", json=init, headers=headers, timeout=30)
    session = opened.headers["mcp-session-id"]
    listed = httpx.post(f"{replicas[1].url}/api/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
                        headers={**headers, "Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-06-18"},
                        timeout=30)
    assert listed.status_code == 404, listed.text
    assert "session" in listed.text.lower()


def test_two_replicas_starting_at_once_migrate_an_empty_database_once(pg_cluster: PgCluster) -> None:
    url = pg_cluster.create_database()
    data_dir = Path(tempfile.mkdtemp(prefix="migrate-", dir=BASE))
    pair = [Gateway(data_dir, env_extra=replica_env(url)) for _ in range(2)]
    threads = [threading.Thread(target=gw.start) for gw in pair]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        with psycopg.connect(url) as conn:
            versions = [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
        assert versions == [v for v, _ in migrations()]
        assert len(leaders(pair)) == 1
    finally:
        for gw in pair:
            gw.stop()


def test_on_the_kubernetes_runtime_a_lease_elects_the_leader(pg_cluster: PgCluster, fake_cluster: Path) -> None:
    import asyncio

    from k8s.client import KubeClient

    async def gateway_namespace() -> None:  # where the gateway runs, and so where its Lease lives
        kube = await KubeClient.connect(fake_cluster)
        try:
            await kube.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubegate"}})
        except Exception as exc:  # another test of this session made it already
            assert "already exists" in str(exc)
        await kube.close()

    asyncio.run(gateway_namespace())
    url = pg_cluster.create_database()
    env = {"KUBEGATE_DATABASE_URL": url, "KUBEGATE_RUNTIME": "kubernetes", "KUBEGATE_KUBECONFIG": str(fake_cluster)}
    data_dir = Path(tempfile.mkdtemp(prefix="lease-", dir=BASE))
    pair = [Gateway(data_dir, env_extra=env).start() for _ in range(2)]
    try:
        leader = one_leader(pair)
        follower = next(gw for gw in pair if gw is not leader)
        for gw in pair:  # a follower watches nothing, and is ready all the same
            assert httpx.get(f"{gw.url}/readyz", timeout=30).status_code == 200
        key = mint_key(data_dir, user=USER, env=env)
        client = Client(follower.url, key)
        made = client.request("POST", "/api/tasks", json={"name": "job", "image": "alpine",
                                                          "command": ["sh", "-c", "echo hi; exit 3"]})
        task = client.until_done("task", made.json()["task"]["id"])
        assert (task["status"], task["exitCode"], task["output"]) == ("failed", 3, "hi")
        sandbox = create(client, "kube", "10m")  # handed to the leader, served by both
        for through in (client, Client(leader.url, key)):
            until_status(through, sandbox["id"], "running")
            assert run(through, sandbox["id"], "echo in-pod")["stdout"] == "in-pod\n"
        leader.stop(signal.SIGKILL)
        assert one_leader([follower]) is follower  # once the Lease expired
        assert run(client, sandbox["id"], "echo still")["stdout"] == "still\n"
        assert client.request("DELETE", f"/api/sandboxes/{sandbox['id']}").status_code == 200
    finally:
        for gw in pair:
            gw.stop()


def test_a_deployment_is_kept_by_the_leader_alone_and_served_by_every_replica(
        replicas: list[Gateway], proxy: RoundRobin, key: str) -> None:
    marker = uuid.uuid4().hex
    made = Client(proxy.url, key).request("POST", "/api/deployments", json={
        "template": "hello-python", "envVars": {"MARKER": marker}})
    assert made.status_code == 201, made.text
    name, url = made.json()["name"], made.json()["url"]
    leader = one_leader(replicas)
    first, second = [gw for gw in replicas if gw is not leader]
    bearer = {"Authorization": f"Bearer {key}"}
    try:
        ready_everywhere(replicas, key, name, 1, "Hello from kubegate", url)
        logs = httpx.get(f"{first.url}/api/deployments/{name}/logs", headers=bearer, timeout=30).json()
        assert any('"GET /healthz HTTP/1.' in line["text"] for line in logs["lines"]), logs
        usage = tool(second, key, "deployments/metrics", {"name": name})
        assert usage["available"] and usage["replicas"][0]["memoryBytes"] > 1_000_000, usage

        scaled = httpx.post(f"{first.url}/api/deployments/{name}/scale", json={"replicas": 2}, headers=bearer,
                            timeout=30)
        assert scaled.status_code == 200 and scaled.json()["replicas"] == 2, scaled.text
        updated = tool(second, key, "deployments/update", {"name": name, "envVars": {"GREETING": "Kept once"}})
        assert updated["name"] == name and {"name": "GREETING", "value": "Kept once", "secret": False} \
            in updated["envVars"], updated
        ready_everywhere(replicas, key, name, 2, "Kept once", url)
        until("two app processes", lambda: exactly(2, marker))

        leader.stop(signal.SIGKILL)
        with restarted_after(leader):
            survivors = [first, second]
            one_leader(survivors)
            ready_everywhere(survivors, key, name, 2, "Kept once", url)
            victim, *_ = app_pids(marker)
            os.kill(victim, signal.SIGKILL)
            restarts = until("the restart recorded", lambda: sum(
                r["restarts"] for r in httpx.get(f"{first.url}/api/deployments/{name}", headers=bearer,
                                                 timeout=30).json()["replicaStatus"]))
            assert restarts == 1
            ready_everywhere(survivors, key, name, 2, "Kept once", url)
            until("two app processes", lambda: exactly(2, marker))
    finally:
        deleted = httpx.delete(f"{second.url}/api/deployments/{name}", headers=bearer, timeout=30)
    assert deleted.status_code == 200 and deleted.json()["status"] == "Deleting", deleted.text
    for gw in replicas:
        until(f"{name} gone on {gw.port}", lambda gw=gw: httpx.get(
            f"{gw.url}/api/deployments/status", params={"name": name}, headers=bearer, timeout=30).status_code == 404)
    until("no app process left", lambda: exactly(0, marker))


def test_a_follower_killed_right_after_a_create_leaves_the_app_to_the_leader(
        replicas: list[Gateway], key: str, cluster_url: str) -> None:
    leader = one_leader(replicas)
    maker, other = [gw for gw in replicas if gw is not leader]
    bearer = {"Authorization": f"Bearer {key}"}
    with restarted_after(maker):
        made = httpx.post(f"{maker.url}/api/deployments", headers=bearer, timeout=30, json={
            "image": "python:3.12-slim", "port": 9000, "command": SLOW_START, "visibility": "internal"})
        maker.stop(signal.SIGKILL)
        assert made.status_code == 201, made.text
        name, host = made.json()["name"], urlsplit(made.json()["url"]).netloc
        assert stored_status(cluster_url, name) in ("Pending", "Provisioning")
        until(f"{name} Ready in the database", lambda: stored_status(cluster_url, name) == "Ready")
    # Internal: through a follower too, its URL answers only its owner's key.
    assert httpx.get(other.url, headers={"Host": host}, timeout=30).status_code == 401
    assert httpx.get(other.url, headers={"Host": host, **bearer}, timeout=30).status_code == 200
    deleted = httpx.delete(f"{other.url}/api/deployments/{name}", headers=bearer, timeout=30)
    assert deleted.status_code == 200, deleted.text
    until(f"{name} gone", lambda: stored_status(cluster_url, name) is None)
