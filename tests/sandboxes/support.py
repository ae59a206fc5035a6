"""Helpers for the sandbox tests: settings, waiting on a status, reaching a sandbox's URL."""

from __future__ import annotations

import base64
import socket
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx

from tests.doors import Door
from tests.workloads import kill_supervisors as kill_supervisors  # its old home; other suites import it here

SANDBOX_ENV = {
    "KUBEGATE_RUNTIME": "local",
    "KUBEGATE_MAX_SANDBOXES_PER_USER": "3",
    "KUBEGATE_MAX_SANDBOX_TIMEOUT_SECONDS": "7200",
}


async def create(door: Door, name: str, **extra: Any) -> dict[str, Any]:
    outcome = await door.call("sandboxes_create", {"name": name, "image": "ubuntu:22.04", **extra})
    assert outcome.ok, outcome.body
    sandbox: dict[str, Any] = outcome.body["sandbox"]
    return sandbox


async def wait_status(door: Door, sandbox_id: str, *statuses: str, within: float = 30.0) -> dict[str, Any]:
    """Poll ``sandboxes_get`` until the sandbox has one of ``statuses`` (bounded)."""
    with anyio.fail_after(within):
        while True:
            outcome = await door.call("sandboxes_get", {"sandboxId": sandbox_id})
            assert outcome.ok, outcome.body
            sandbox: dict[str, Any] = outcome.body["sandbox"]
            if sandbox["status"] in statuses:
                return sandbox
            await anyio.sleep(0.05)


async def exec_ok(door: Door, sandbox_id: str, script: str) -> dict[str, Any]:
    outcome = await door.call("sandboxes_exec", {"sandboxId": sandbox_id, "command": ["sh", "-c", script]})
    assert outcome.ok, outcome.body
    assert outcome.body["exitCode"] == 0, outcome.body
    return outcome.body


def host_of(url: str) -> str:
    return urlsplit(url).netloc


def basic(password: str) -> str:
    return "Basic " + base64.b64encode(f"any:{password}".encode()).decode()


async def fetch(gateway_url: str, sandbox_url: str, path: str = "/", **headers: str) -> httpx.Response:
    """GET ``path`` on the sandbox's URL, sent to the gateway (``*.localhost`` names need no DNS)."""
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as client:
        return await client.get(path, headers={"Host": host_of(sandbox_url), **headers})


async def wait_served(gateway_url: str, sandbox_url: str, password: str, within: float = 30.0) -> httpx.Response:
    """Wait until the sandbox's server answers through the URL (it may still be starting)."""
    with anyio.fail_after(within):
        while (response := await fetch(gateway_url, sandbox_url, authorization=basic(password))).status_code == 502:
            await anyio.sleep(0.05)
    return response


def gateway_socket(gateway_url: str) -> socket.socket:
    parts = urlsplit(gateway_url)
    return socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80))


WS_ECHO = r'''
import base64, hashlib, socket, struct, threading
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
def handle(c):
    data = b""
    while b"\r\n\r\n" not in data:
        data += c.recv(4096)
    keys = [l.split(b":", 1)[1].strip() for l in data.split(b"\r\n") if l.lower().startswith(b"sec-websocket-key")]
    if not keys:
        c.sendall(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        c.close()
        return
    key = keys[0]
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    f = c.makefile("rb")
    while True:
        head = f.read(2)
        if len(head) < 2:
            return
        op, n = head[0] & 15, head[1] & 127
        if n == 126:
            n = struct.unpack(">H", f.read(2))[0]
        mask = f.read(4)
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(f.read(n)))
        if op == 8:
            c.sendall(b"\x88\x00")
            return
        reply = b"echo:" + payload
        c.sendall(bytes([0x80 | op, len(reply)]) + reply)
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", 8080))  # all addresses: on Kubernetes the Service reaches the Pod's own
server.listen()
while True:
    threading.Thread(target=handle, args=(server.accept()[0],), daemon=True).start()
'''
"""A stdlib WebSocket echo server on port 8080 (the sandbox's Python has no websockets package)."""
