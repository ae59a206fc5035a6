"""HTTP probes as the kubelet sends them: a GET to the Pod's address, 2xx/3xx is success."""

from __future__ import annotations

import asyncio
from typing import Any

Obj = dict[str, Any]


def host(pod_ip: str | None) -> str:
    """Where a Pod's ports are reached here: its own address when the sim gives it a loopback one, else the host's
    loopback (the simulated kubelet runs containers on the host's network)."""
    return pod_ip if pod_ip and pod_ip.startswith("127.") else "127.0.0.1"


def port(http_get: Obj, container: Obj) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    wanted = http_get["port"]
    if isinstance(wanted, int):
        return wanted
    for entry in container.get("ports") or []:
        if entry.get("name") == wanted:
            return int(entry["containerPort"])
    return int(wanted) if str(wanted).isdigit() else 0


async def http_get(address: str, number: int, path: str, timeout: float) -> bool:
    """One probe: connected, answered with a status line, and the status is 200..399."""
    if number <= 0:
        return False
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(address, number)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {address}:{number}\r\nUser-Agent: kube-probe/1.33\r\n"
                         f"Accept: */*\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            line = await reader.readline()
    except (OSError, TimeoutError):
        return False
    finally:
        if writer is not None:
            writer.close()
    parts = line.split()
    return len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit() and 200 <= int(parts[1]) < 400
