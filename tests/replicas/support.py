"""What the replica tests share: their settings, a client that takes the proxy's turns, who leads."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import GATEWAY_READONLY_PATHS
from tests.deployments.support import EXAMPLES
from tests.gateway import Gateway, free_port

DEADLINE = 60.0
BASE = Path("/var/lib/kubegate-tests")  # outside /tmp, readable by the runs as a real install would be
PROXY_PORT = free_port()
USER = "replicas@example.test"


def replica_env(url: str, redis: str = "memory://") -> dict[str, str]:
    return {"KUBEGATE_DATABASE_URL": url, "KUBEGATE_RUNTIME": "local", "KUBEGATE_RUN_READONLY_PATHS":
            GATEWAY_READONLY_PATHS, "KUBEGATE_PUBLIC_URL": f"http://127.0.0.1:{PROXY_PORT}",
            "KUBEGATE_RATE_LIMIT_STORAGE": redis, "KUBEGATE_ADMIN_EMAILS": USER, "KUBEGATE_DEV_LOGIN": "1",
            "KUBEGATE_TEMPLATES_FILE": str(EXAMPLES / "templates.yaml")}


class Client:
    """One connection per request to ``url`` (through the proxy, the replicas take turns)."""

    def __init__(self, url: str, key: str) -> None:
        self.url, self.headers = url, {"Authorization": f"Bearer {key}"}

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=60) as client:
            return client.request(method, path, **kwargs)

    def tool(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        response = self.request("POST", "/api/mcp", json={"method": method, "params": params})
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()["result"]
        return result

    def until_done(self, kind: str, object_id: str) -> dict[str, Any]:
        end = time.monotonic() + DEADLINE * 3
        while time.monotonic() < end:
            args = {f"{kind}Id": object_id, "timeoutSeconds": 20}
            found: dict[str, Any] = self.tool(f"{kind}s/wait", args)[kind]
            if found["status"] in ("completed", "failed"):
                return found
        raise AssertionError(f"{kind} {object_id} did not finish")


def leaders(replicas: list[Gateway]) -> list[Gateway]:
    found = []
    for gw in replicas:
        try:
            if httpx.get(f"{gw.url}/healthz", timeout=5).json()["leader"]:
                found.append(gw)
        except httpx.HTTPError:
            continue
    return found


def one_leader(replicas: list[Gateway]) -> Gateway:
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        found = leaders(replicas)
        if len(found) == 1:
            return found[0]
        time.sleep(0.1)
    raise AssertionError("no single leader")
