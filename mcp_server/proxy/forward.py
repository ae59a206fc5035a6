"""Forward one HTTP request or WebSocket session to a workload's endpoint (Unix socket or TCP).

A request without a body (not ``HEAD``) goes through the lean relay (``relay``); the others
through one ``httpcore`` connection pool per endpoint (keep-alive to the workload; ``httpcore``
rather than ``httpx``, whose per-request model and logging halved the throughput), streaming
both bodies; WebSocket sessions are relayed message by message with ``websockets``.
Hop-by-hop headers are dropped both ways; the original ``Host`` is kept (the app inside builds
its links from it) and ``X-Forwarded-*`` say who asked. ``httpcore`` and ``websockets`` are imported
on first use: the lean relay needs neither, and they would add ~70 ms to every gateway's start.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.types import Message, Receive, Scope, Send

from mcp_server.proxy.relay import relay, request_head
from mcp_server.runtime.base import Endpoint

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

_HOP = frozenset({b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer",
                  b"transfer-encoding", b"upgrade", b"host"})
_WS_OWN = frozenset({b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions",
                     b"sec-websocket-protocol", b"sec-websocket-accept"})
Headers = list[tuple[bytes, bytes]]


class _Target:
    """A pooled client for one endpoint; a long socket path is reached through ``/proc/self/fd``."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.dir_fd: int | None = None
        self.socket_path: str | None = None
        self.host, self.port = endpoint.host, endpoint.port
        if endpoint.unix_socket is not None:
            path = Path(endpoint.unix_socket)
            self.socket_path = str(path)
            if len(self.socket_path.encode()) >= 100:
                self.dir_fd = os.open(path.parent, os.O_PATH | os.O_CLOEXEC)
                self.socket_path = f"/proc/self/fd/{self.dir_fd}/{path.name}"
            self.base = "http://workload"
        else:
            self.base = f"http://{endpoint.host}:{endpoint.port}"
        self._pool: Any = None

    @property
    def pool(self) -> Any:
        """The ``httpcore`` pool, made for the first request with a body (or ``HEAD``)."""
        if self._pool is None:
            import httpcore

            self._pool = httpcore.AsyncConnectionPool(uds=self.socket_path, max_connections=64)
        return self._pool

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with asyncio.timeout(10.0):
            if self.socket_path is not None:
                return await asyncio.open_unix_connection(self.socket_path)
            return await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
        if self.dir_fd is not None:
            os.close(self.dir_fd)


class Forwarder:
    """Forwards to many endpoints, keeping a pooled client for the most recently used ones."""

    def __init__(self, max_targets: int = 64) -> None:
        self._targets: OrderedDict[Endpoint, _Target] = OrderedDict()
        self._max = max_targets
        self._closing: set[asyncio.Task[None]] = set()

    def _target(self, endpoint: Endpoint) -> _Target:
        target = self._targets.pop(endpoint, None) or _Target(endpoint)
        self._targets[endpoint] = target
        while len(self._targets) > self._max:
            _, old = self._targets.popitem(last=False)
            closing = asyncio.get_running_loop().create_task(old.close())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        return target

    async def forget(self, endpoint: Endpoint) -> None:
        target = self._targets.pop(endpoint, None)
        if target is not None:
            await target.close()

    async def close(self) -> None:
        while self._targets:
            await self._targets.popitem()[1].close()

    async def http(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send, headers: Headers) -> None:
        """Forward the request; 502 when nothing answers at the endpoint."""
        target = self._target(endpoint)
        url = target.base + scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        has_body = any(n in (b"content-length", b"transfer-encoding") for n, _ in headers)
        forwarded = _forwarded(scope, headers)
        if not has_body and scope["method"] != "HEAD":
            await self._lean(target, url.removeprefix(target.base), scope, send, forwarded)
            return
        if has_body and not any(n == b"content-length" for n, _ in forwarded):
            forwarded.append((b"transfer-encoding", b"chunked"))
        import httpcore

        started = False
        try:
            async with target.pool.stream(scope["method"], url, headers=forwarded,
                                          content=_body(receive) if has_body else None,
                                          extensions={"timeout": {"connect": 10.0}}) as response:
                started = True
                await send({"type": "http.response.start", "status": response.status,
                            "headers": _kept(response.headers)})
                async for chunk in response.aiter_stream():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
        except httpcore.NetworkError:
            if not started:  # else the response is cut short, which the client sees
                await _plain(send, 502, b"Nothing answers on the workload's port (yet).\n")
        except httpcore.RemoteProtocolError:
            if not started:
                await _plain(send, 502, b"The workload closed the connection without an answer.\n")

    async def _lean(self, target: _Target, path: str, scope: Scope, send: Send, forwarded: Headers) -> None:
        try:
            streams = await target.connect()
        except (OSError, TimeoutError):
            await _plain(send, 502, b"Nothing answers on the workload's port (yet).\n")
            return
        if not await relay(streams, request_head(scope["method"], path, forwarded), send, _kept):
            await _plain(send, 502, b"The workload closed the connection without an answer.\n")

    async def websocket(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send,
                        headers: Headers) -> None:
        """Relay a WebSocket session; closes with 1011 when the workload refuses it."""
        target = self._target(endpoint)
        protocols = [p.strip() for name, v in headers if name == b"sec-websocket-protocol"
                     for p in v.decode("latin-1").split(",") if p.strip()]
        extra = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in _forwarded(scope, headers)
                 if n.lower() not in _WS_OWN]
        path = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            path += "?" + scope["query_string"].decode("latin-1")
        if (await receive())["type"] != "websocket.connect":
            return
        from websockets.exceptions import InvalidHandshake

        try:
            upstream = await _ws_connect(target, path, extra, protocols)
        except (OSError, InvalidHandshake, TimeoutError):
            await send({"type": "websocket.close", "code": 1011})
            return
        async with upstream:
            await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})
            await _relay(upstream, receive, send)


async def _ws_connect(target: _Target, path: str, headers: list[tuple[str, str]],
                      protocols: list[str]) -> ClientConnection:
    from websockets.asyncio.client import connect, unix_connect

    host = next((v for n, v in headers if n.lower() == "x-forwarded-host"), "workload")
    kwargs: dict[str, Any] = {"additional_headers": headers, "subprotocols": protocols or None, "open_timeout": 10,
              "max_size": 16 << 20, "compression": None}
    if target.socket_path is not None:
        return await unix_connect(target.socket_path, f"ws://{host}{path}", **kwargs)
    return await connect(target.base.replace("http", "ws", 1) + path, **kwargs)


async def _relay(upstream: ClientConnection, receive: Receive, send: Send) -> None:
    from websockets.exceptions import ConnectionClosed

    async def downstream() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in upstream:
                key = "text" if isinstance(message, str) else "bytes"
                await send({"type": "websocket.send", key: message})
        code = upstream.close_code or 1000
        await send({"type": "websocket.close", "code": code if 1000 <= code < 5000 and code != 1005 else 1000})

    relay = asyncio.create_task(downstream())
    try:
        while True:
            message: Message = await receive()
            if message["type"] == "websocket.disconnect":
                break
            data = message.get("text") if message.get("text") is not None else message.get("bytes")
            if data is not None:
                await upstream.send(data)
    except ConnectionClosed:
        pass
    finally:
        await upstream.close()
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await relay


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        if message.get("body"):
            yield message["body"]
        if not message.get("more_body"):
            return


def _kept(headers: Iterable[tuple[bytes, bytes]]) -> Headers:
    return [(n.lower(), v) for n, v in headers if n.lower() not in _HOP]


def _forwarded(scope: Scope, headers: Headers) -> Headers:
    host = next((v for n, v in scope["headers"] if n == b"host"), b"")
    client = (scope.get("client") or ("", 0))[0].encode()
    scheme = b"https" if scope.get("scheme") in ("https", "wss") else b"http"
    return [*_kept(headers), (b"host", host), (b"x-forwarded-host", host), (b"x-forwarded-for", client),
            (b"x-forwarded-proto", scheme)]


async def _plain(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
