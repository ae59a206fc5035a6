"""Sandboxes through three replicas (run by ``test_replicas``, on its replicas, proxy and key).

A sandbox made through a follower is started by the leader; every replica, hit on its own port,
then serves it: status, exec, files, usage, its URL with the password, extend and delete. The
leader is SIGKILLed while sandboxes live: the next one re-attaches to them, records the timeout
of a short one, and starts one handed over around the kill.
"""

from __future__ import annotations

import base64
import signal
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import psycopg

from tests.doors import McpDoor, open_door
from tests.gateway import Gateway
from tests.replicas.support import DEADLINE, Client, one_leader
from tests.roundrobin import RoundRobin


def create(client: Client, name: str, timeout: str) -> dict[str, Any]:
    made = client.request("POST", "/api/sandboxes", json={"name": name, "image": "ubuntu:22.04", "timeout": timeout})
    assert made.status_code == 201, made.text
    sandbox: dict[str, Any] = made.json()["sandbox"]
    assert sandbox["status"] == "provisioning" and sandbox["credentials"]["password"]
    return sandbox


def until_status(client: Client, sandbox_id: str, *statuses: str, within: float = DEADLINE) -> dict[str, Any]:
    """Poll the sandbox through ``client`` until it has one of ``statuses`` (bounded)."""
    end = time.monotonic() + within
    while True:
        got = client.request("GET", f"/api/sandboxes/{sandbox_id}")
        assert got.status_code == 200, got.text
        sandbox: dict[str, Any] = got.json()["sandbox"]
        if sandbox["status"] in statuses:
            return sandbox
        assert time.monotonic() < end, f"{sandbox_id} stayed {sandbox['status']} on {client.url}"
        time.sleep(0.05)


def run(client: Client, sandbox_id: str, script: str) -> dict[str, Any]:
    ran = client.request("POST", f"/api/sandboxes/{sandbox_id}/exec", json={"command": ["sh", "-c", script]})
    assert ran.status_code == 200, ran.text
    body: dict[str, Any] = ran.json()
    return body


def through_url(gw: Gateway, sandbox: dict[str, Any], path: str, password: str | None) -> httpx.Response:
    """GET ``path`` on the sandbox's URL, sent to replica ``gw`` (``*.localhost`` needs no DNS)."""
    headers = {"Host": urlsplit(sandbox["url"]).netloc}
    if password is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"any:{password}".encode()).decode()
    end = time.monotonic() + DEADLINE
    while (answer := httpx.get(f"{gw.url}{path}", headers=headers, timeout=30)).status_code == 502:
        assert time.monotonic() < end, "the sandbox's server never answered"
        time.sleep(0.05)  # the server inside is still starting
    return answer


def sdk_exec(gw: Gateway, key: str, sandbox_id: str, script: str, streamed: str) -> dict[str, Any]:
    """Exec through the MCP SDK's client on replica ``gw``; its output ``streamed`` comes as log messages."""
    async def call() -> dict[str, Any]:
        async with open_door("mcp-http-session", url=gw.url, stateless_url=gw.url, key=key,
                             data_dir=gw.data_dir) as door:
            assert isinstance(door, McpDoor)
            outcome = await door.call("sandboxes_exec", {"sandboxId": sandbox_id, "command": ["sh", "-c", script]})
            assert outcome.ok, outcome.body
            with anyio.fail_after(DEADLINE):  # notifications are handled apart from the result
                while streamed not in "".join(door.logs):
                    await anyio.sleep(0.02)
            return outcome.body

    return anyio.run(call)


def delete(client: Client, sandbox_id: str) -> None:
    client.request("DELETE", f"/api/sandboxes/{sandbox_id}")


def test_a_sandbox_made_through_any_replica_is_served_by_every_replica(replicas: list[Gateway], proxy: RoundRobin,
                                                                       key: str, cluster_url: str) -> None:
    through_proxy = Client(proxy.url, key)
    # Consecutive requests take turns: of two creates, at least one lands on a follower.
    served, extended = create(through_proxy, "everywhere", "10m"), create(through_proxy, "extended", "30s")
    direct = [Client(gw.url, key) for gw in replicas]
    leader = one_leader(replicas)
    follower = direct[next(i for i, gw in enumerate(replicas) if gw is not leader)]
    try:
        for sandbox in (served, extended):
            for client in direct:
                assert until_status(client, sandbox["id"], "running")["url"] == sandbox["url"]
        # Extended through a follower (well before its first end), it will outlive that end: checked below.
        first_end = datetime.fromisoformat(extended["expiresAt"].replace("Z", "+00:00"))
        longer = follower.request("POST", f"/api/sandboxes/{extended['id']}/extend", json={"timeout": "10m"})
        assert longer.status_code == 200, longer.text
        assert longer.json()["sandbox"]["expiresAt"] > extended["expiresAt"]

        sid, password = served["id"], served["credentials"]["password"]
        with psycopg.connect(cluster_url) as conn:  # handed over and started: no password left at rest
            assert conn.execute("SELECT COUNT(*) FROM sandbox_starts").fetchone() == (0,)
        assert run(follower, sid, "nohup python3 -m http.server 8080 >server.log 2>&1 &")["exitCode"] == 0
        for i, (gw, client) in enumerate(zip(replicas, direct, strict=True)):
            ran = run(client, sid, f"echo via-{i}; echo oops >&2; exit 3")
            assert (ran["exitCode"], ran["stdout"], ran["stderr"]) == (3, f"via-{i}\n", "oops\n")
            over_mcp = sdk_exec(gw, key, sid, f"echo mcp-{i}", f"mcp-{i}")
            assert (over_mcp["exitCode"], over_mcp["stdout"]) == (0, f"mcp-{i}\n"), over_mcp
            wrote = client.tool("sandboxes/write_file", {"sandboxId": sid, "path": f"from-{i}.txt",
                                                         "content": f"written through replica {i}\n"})
            assert wrote["size"] == len(f"written through replica {i}\n")
            reader = direct[(i + 1) % len(direct)]
            read = reader.request("GET", f"/api/sandboxes/{sid}/files", params={"path": f"from-{i}.txt"})
            assert read.status_code == 200 and read.json()["content"] == f"written through replica {i}\n"
            seen = client.request("GET", f"/api/sandboxes/{sid}").json()["sandbox"]
            assert seen["usage"]["processes"] >= 2  # its agent and the server
            listed = client.tool("sandboxes/list", {"status": "running"})["sandboxes"]
            assert {served["id"], extended["id"]} <= {s["id"] for s in listed}
            page = through_url(gw, served, f"/from-{i}.txt", password)
            assert page.status_code == 200 and page.text == f"written through replica {i}\n"
            assert through_url(gw, served, f"/from-{i}.txt", None).status_code == 401

        # The extended one outlives its first end: a command spanning it completes.
        wait = max(1, int((first_end - datetime.now(UTC)).total_seconds()) + 3)
        spanning = run(follower, extended["id"], f"sleep {wait}; echo alive")
        assert (spanning["exitCode"], spanning["stdout"]) == (0, "alive\n")
        for client in direct:
            assert until_status(client, extended["id"], "running")["expiresAt"] == longer.json()["sandbox"]["expiresAt"]

        # Deleted through a follower: gone everywhere, its process and files with it.
        gone = follower.request("DELETE", f"/api/sandboxes/{sid}")
        assert gone.status_code == 200 and (gone.json()["sandbox"]["status"], gone.json()["sandbox"]["reason"]) == (
            "terminated", "deleted")
        for gw, client in zip(replicas, direct, strict=True):
            assert client.request("GET", f"/api/sandboxes/{sid}").status_code == 404
            assert through_url(gw, served, "/from-0.txt", password).status_code == 401
        assert not (replicas[0].data_dir / "runs" / sid).exists()
        assert not any(password in gw.logs() for gw in replicas)
    finally:
        delete(through_proxy, served["id"])
        delete(through_proxy, extended["id"])


def test_sandboxes_outlive_a_killed_leader(replicas: list[Gateway], key: str) -> None:
    leader = one_leader(replicas)
    followers = [gw for gw in replicas if gw is not leader]
    first, second = (Client(gw.url, key) for gw in followers)
    short, kept = create(first, "short", "12s"), create(first, "kept", "10m")
    made = [short, kept]
    killed = False
    try:
        for sandbox in made:
            until_status(second, sandbox["id"], "running")
        leader.stop(signal.SIGKILL)
        killed = True
        made.append(late := create(second, "late", "10m"))  # around the kill: handed to whoever leads next
        one_leader(followers)
        for client in (first, second):
            for sandbox in (kept, late):
                until_status(client, sandbox["id"], "running")
                assert run(client, sandbox["id"], "echo still-here")["stdout"] == "still-here\n"
        ended = until_status(second, short["id"], "terminated", "failed")
        assert (ended["status"], ended["reason"]) == ("terminated", "timeout")
        assert until_status(first, short["id"], "terminated")["reason"] == "timeout"
    finally:
        if killed:
            leader.start()  # back, as a follower, for the tests after this one
        for sandbox in made:
            delete(first, sandbox["id"])

