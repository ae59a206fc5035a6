"""Helpers for the deployment tests through replicas (``test_replicas.py``): polling, asking one replica."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg

from tests.deployments.support import app_pids
from tests.gateway import Gateway

DEADLINE = 60.0


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


SLOW_START = ["sh", "-c", "sleep 2; exec python3 -m http.server 9000"]
"""Up only after a while: its maker is dead well before it is Ready."""


def stored_status(database_url: str, name: str) -> str | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT status FROM deployments WHERE name = %s", (name,)).fetchone()
    return str(row[0]) if row else None
