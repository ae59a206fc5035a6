"""A deployment through three replicas on one PostgreSQL and one data dir: the leader alone keeps it.

It is created through the proxy, then read, scaled, updated and deleted through followers (REST and the
MCP shorthand), and each replica is asked directly: every one reports it, serves its URL, its logs and
metrics. The app's processes on this host are counted to show that no second keeper starts replicas of
its own. Then the leader is SIGKILLed: the next one keeps the app (still Ready and served), and restarts
an app process killed after that, recording the restart.

A follower that is SIGKILLed the moment it answered a create has left nothing undone: the leader keeps the
app, which becomes Ready in the shared database with no request asking (the test reads the row itself).
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from tests.deployments.support import app_pids
from tests.gateway import Gateway
from tests.replicas.support import DEADLINE, Client, one_leader
from tests.roundrobin import RoundRobin

pytestmark = pytest.mark.timeout(600)


def exactly(count: int, marker: str) -> list[int] | bool:
    """The app's processes when there are ``count`` of them (True for none); otherwise an assertion naming them."""
    pids = app_pids(marker)
    assert len(pids) == count, pids
    return pids or True


def until(what: str, check: Callable[[], Any], within: float = DEADLINE * 2) -> Any:
    """Poll ``check`` until it answers something truthy, bounded; what it last raised or answered says why not."""
    end, last = time.monotonic() + within, None
    while time.monotonic() < end:
        try:
            if found := check():
                return found
        except (AssertionError, httpx.HTTPError) as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{what}: never; last: {last!r}")


def status(gw: Gateway, key: str, name: str) -> dict[str, Any]:
    response = httpx.get(f"{gw.url}/api/deployments/status", params={"name": name},
                         headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def served(gw: Gateway, url: str) -> str:
    response = httpx.get(gw.url, headers={"Host": urlsplit(url).netloc}, timeout=30)
    assert response.status_code == 200, response.text
    return response.text


def ready_everywhere(gateways: list[Gateway], key: str, name: str, replicas: int, body: str, url: str) -> None:
    """Ready with ``replicas`` through every replica, and its URL answering ``body`` through each."""
    for gw in gateways:
        until(f"{name} Ready ({replicas}) on {gw.port}",
              lambda gw=gw: (s := status(gw, key, name))["status"] == "Ready" and s["readyReplicas"] == replicas)
        until(f"{name} serving {body!r} through {gw.port}", lambda gw=gw: body in served(gw, url))


def tool(gw: Gateway, key: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """The spec's MCP shorthand, sent to one replica."""
    response = httpx.post(f"{gw.url}/api/mcp", json={"method": method, "params": params},
                          headers={"Authorization": f"Bearer {key}"}, timeout=60)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


@contextmanager
def restarted_after(gw: Gateway) -> Iterator[None]:
    """Whatever happens, ``gw`` runs again afterwards (as a follower) for the tests that follow."""
    try:
        yield
    finally:
        if gw.process is None or gw.process.poll() is not None:
            gw.start()


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


SLOW_START = ["sh", "-c", "sleep 2; exec python3 -m http.server 9000"]
"""Up only after a while: its maker is dead well before it is Ready."""


def stored_status(database_url: str, name: str) -> str | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT status FROM deployments WHERE name = %s", (name,)).fetchone()
    return str(row[0]) if row else None


def test_a_follower_killed_right_after_a_create_leaves_the_app_to_the_leader(
        replicas: list[Gateway], key: str, cluster_url: str) -> None:
    leader = one_leader(replicas)
    maker = next(gw for gw in replicas if gw is not leader)
    bearer = {"Authorization": f"Bearer {key}"}
    with restarted_after(maker):
        made = httpx.post(f"{maker.url}/api/deployments", headers=bearer, timeout=30, json={
            "image": "python:3.12-slim", "port": 9000, "command": SLOW_START})
        maker.stop(signal.SIGKILL)
        assert made.status_code == 201, made.text
        name = made.json()["name"]
        assert stored_status(cluster_url, name) in ("Pending", "Provisioning")
        until(f"{name} Ready in the database", lambda: stored_status(cluster_url, name) == "Ready")
    deleted = httpx.delete(f"{leader.url}/api/deployments/{name}", headers=bearer, timeout=30)
    assert deleted.status_code == 200, deleted.text
    until(f"{name} gone", lambda: stored_status(cluster_url, name) is None)
