"""A kube-proxy for the fake cluster: a Service's ``clusterIP:port`` reaches one of its ready Pods.

Each ClusterIP Service gets a ``spec.clusterIP`` of its own in 127.0.0.0/8 (random, so fake
clusters side by side do not collide) and a listener there on each of its ports, so any
process on this machine (a gateway running as another process included) reaches it with
nothing but the Service object: ``spec.clusterIP`` and ``spec.ports[].port``. A connection
goes to a Pod of the Service's namespace that matches its selector, is ``Ready`` and has a
``podIP`` (round robin), at ``podIP:targetPort`` (a named target port is looked up among the
Pod's container ports); with no such Pod it is closed at once, as an unserved Service refuses.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import socket
from typing import Any

from k8s.sim.podnet import random_loopback
from k8s.sim.store import ApiError, Obj, Store

log = logging.getLogger(__name__)
_TRIES = 16
_CHUNK = 1 << 16


def _bindable(address: str, ports: list[int]) -> bool:
    for port in ports:
        with socket.socket() as probe:
            try:
                probe.bind((address, port))
            except OSError:
                return False
    return True


def ready(pod: Obj) -> bool:
    status = pod.get("status") or {}
    conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
    return bool(status.get("podIP")) and conditions.get("Ready") == "True" and not pod["metadata"].get(
        "deletionTimestamp")


def target(pod: Obj, wanted: int | str) -> int | None:
    if isinstance(wanted, int):
        return wanted
    for container in pod["spec"]["containers"]:
        for port in container.get("ports") or []:
            if port.get("name") == wanted:
                return int(port["containerPort"])
    return None


class ServiceProxy:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._servers: dict[str, list[asyncio.AbstractServer]] = {}
        self._turn = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()
        self._open: set[asyncio.StreamWriter] = set()
        store.listeners.append(self._on_event)

    def allocate(self, service: Obj) -> None:
        """Defaulter step: give a ClusterIP Service a loopback ``clusterIP`` free on all its ports."""
        spec = service.setdefault("spec", {})
        if spec.get("type", "ClusterIP") == "ExternalName" or "clusterIP" in spec:
            return
        ports = [int(port.get("port", 0)) for port in spec.get("ports") or []]
        if not all(1 <= port <= 65535 for port in ports):
            return  # validation refuses it
        for _ in range(_TRIES):
            address = random_loopback()
            if _bindable(address, ports):
                spec["clusterIP"] = address
                return

    def _on_event(self, resource: str, kind: str, obj: Obj) -> None:
        if resource != "services":
            return
        uid = obj["metadata"]["uid"]
        if kind == "ADDED":
            task = asyncio.get_running_loop().create_task(self._listen(uid, obj))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif kind == "DELETED":
            for server in self._servers.pop(uid, []):
                server.close()

    async def _listen(self, uid: str, service: Obj) -> None:
        spec = service["spec"]
        address = spec.get("clusterIP") or ""
        if not address.startswith("127."):
            return
        servers = self._servers.setdefault(uid, [])
        meta = service["metadata"]
        for port in spec.get("ports") or []:
            if port.get("protocol", "TCP") != "TCP":
                continue
            key = (meta["namespace"], meta["name"], int(port["port"]))
            try:
                servers.append(await asyncio.start_server(functools.partial(self._connect, key), address, key[2]))
            except OSError as exc:
                log.warning("service %s/%s: cannot listen on %s:%s: %s", *key[:2], address, key[2], exc)

    async def _connect(self, key: tuple[str, str, int], reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        upstream = self._pick(*key)
        if upstream is None:
            writer.close()
            return
        try:
            far_reader, far_writer = await asyncio.open_connection(*upstream)
        except OSError:
            writer.close()
            return
        self._open |= {writer, far_writer}  # so that ``close`` ends open connections too
        try:
            await asyncio.gather(_pipe(reader, far_writer), _pipe(far_reader, writer))
        finally:
            self._open -= {writer, far_writer}
            far_writer.close()
            writer.close()

    def _pick(self, namespace: str, name: str, port: int) -> tuple[str, int] | None:
        try:
            service = self._store.get("services", namespace, name)
        except ApiError:
            return None
        entry = next((p for p in service["spec"].get("ports") or [] if int(p["port"]) == port), None)
        selector = service["spec"].get("selector") or {}
        if entry is None or not selector:
            return None
        query = ",".join(f"{key}={value}" for key, value in sorted(selector.items()))
        candidates: list[tuple[str, int]] = []
        for pod in self._store.list("pods", namespace, query):
            wanted: Any = entry.get("targetPort", port)
            if ready(pod) and (number := target(pod, wanted)) is not None:
                candidates.append((pod["status"]["podIP"], number))
        if not candidates:
            return None
        return candidates[next(self._turn) % len(candidates)]

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for writer in list(self._open):
            writer.close()
        for servers in self._servers.values():
            for server in servers:
                server.close()
        self._servers.clear()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(_CHUNK):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # half-close: the other way may still be talking
    except (ConnectionError, OSError):
        writer.close()
