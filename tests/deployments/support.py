"""Helpers for the deployment tests: settings, waiting on a status, reaching a deployment's URL."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import yaml  # type: ignore[import-untyped]

from tests.doors import Door

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ADMIN = "admin@example.test"
DEPLOY_ENV = {
    "KUBEGATE_RUNTIME": "local",
    "KUBEGATE_TEMPLATES_FILE": str(EXAMPLES / "templates.yaml"),
    "KUBEGATE_ADMIN_EMAILS": ADMIN,
    "KUBEGATE_MAX_DEPLOYMENTS_PER_USER": "3",
}
HELLO_PYTHON = next(t for t in yaml.safe_load((EXAMPLES / "templates.yaml").read_text())["templates"]
                    if t["name"] == "hello-python")["command"][2].rstrip("\n").encode()
"""The example app's program (``python3 -c PROGRAM``): its agent, and bwrap, run other ones."""
HTTP_SERVER = ["python3", "-m", "http.server", "9000"]
"""A raw app: serves its (empty) work dir on port 9000."""


async def create(door: Door, **args: Any) -> dict[str, Any]:
    outcome = await door.call("deployments_create", args)
    assert outcome.ok, outcome.body
    return outcome.body


async def wait_status(door: Door, name: str, *statuses: str, within: float = 60.0,
                      ready: int | None = None) -> dict[str, Any]:
    """Poll ``deployments_status`` until it says one of ``statuses`` (and ``ready`` replicas), bounded."""
    seen: dict[str, Any] = {}
    try:
        with anyio.fail_after(within):
            while True:
                outcome = await door.call("deployments_status", {"name": name})
                assert outcome.ok, outcome.body
                seen = outcome.body
                if seen["status"] in statuses and (ready is None or seen["readyReplicas"] == ready):
                    return seen
                await anyio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{name} never became {statuses} (ready {ready}); last seen: {seen}") from None


async def wait_gone(door: Door, name: str, within: float = 30.0) -> None:
    with anyio.fail_after(within):
        while (await door.call("deployments_status", {"name": name})).ok:
            await anyio.sleep(0.05)


async def fetch(gateway_url: str, app_url: str, path: str = "/", **headers: str) -> httpx.Response:
    """GET ``path`` on the app's URL, sent to the gateway (``*.localhost`` names need no DNS)."""
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as client:
        return await client.get(path, headers={"Host": urlsplit(app_url).netloc, **headers})


async def wait_served(gateway_url: str, app_url: str, needle: str, within: float = 60.0, path: str = "/",
                      **headers: str) -> str:
    """Wait until the app's URL answers 200 with ``needle`` in the body (an update may still be rolling)."""
    with anyio.fail_after(within):
        while True:
            response = await fetch(gateway_url, app_url, path, **headers)
            if response.status_code == 200 and needle in response.text:
                return response.text
            await anyio.sleep(0.05)


def app_pids(marker: str) -> list[int]:
    """The processes of the example app (``hello-python``; not its agent's) whose env carries ``MARKER=marker``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        app = argv[1:3] == [b"-c", HELLO_PYTHON] or argv[1:3] == [b"-c", HELLO_PYTHON + b"\n"]
        if app and f"MARKER={marker}".encode() in environ:
            found.append(int(pid))
    return found
