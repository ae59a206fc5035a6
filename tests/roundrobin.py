"""A small round-robin HTTP proxy for the replica tests, with MCP session affinity.

Each request goes to the next replica; a replica that refuses the connection (stopped,
restarting) is skipped for the next, as a load balancer's health checks would. A request that
carries ``Mcp-Session-Id`` goes to the replica that issued that session, which is the affinity
session-mode MCP needs in front of several replicas (README "Scale-out"). Responses stream
through as they come, so server-sent events pass unchanged. It runs in a thread of the test
process, under uvicorn on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Sequence
from typing import Any

import httpx
import uvicorn

_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"upgrade", b"proxy-connection"}
Message = dict[str, Any]


class RoundRobin:
    def __init__(self, ports: Sequence[int], port: int) -> None:
        self.ports = list(ports)
        self.port = port
        self.chosen: list[int] = []
        """The replica port of every request forwarded, in order."""
        self._next = itertools.count()
        self._sessions: dict[bytes, int] = {}
        self._client: httpx.AsyncClient | None = None
        self._server = uvicorn.Server(uvicorn.Config(self, host="127.0.0.1", port=port, log_level="warning",
                                                     lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> RoundRobin:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the proxy did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)

    def _order(self, session: bytes | None) -> list[int]:
        if session is not None and session in self._sessions:
            return [self._sessions[session]]
        first = next(self._next)
        return [self.ports[(first + i) % len(self.ports)] for i in range(len(self.ports))]

    async def __call__(self, scope: Message, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _HOP]
        session = next((v for k, v in headers if k.lower() == b"mcp-session-id"), None)
        path = scope["raw_path"] + (b"?" + scope["query_string"] if scope["query_string"] else b"")
        if self._client is None:  # a fresh connection each time: none goes stale while a replica restarts
            self._client = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0),
                                             timeout=httpx.Timeout(None))
        for port in self._order(session):
            request = self._client.build_request(scope["method"], f"http://127.0.0.1:{port}{path.decode()}",
                                                 headers=headers, content=body)
            try:
                response = await self._client.send(request, stream=True)
            except httpx.ConnectError:
                continue
            self.chosen.append(port)
            issued = response.headers.get("mcp-session-id")
            if issued:
                self._sessions[issued.encode()] = port
            await self._relay(response, receive, send)
            return
        await send({"type": "http.response.start", "status": 502, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"no replica answered"})

    async def _relay(self, response: httpx.Response, receive: Any, send: Any) -> None:
        headers = [(k, v) for k, v in response.headers.raw if k.lower() not in _HOP]
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})

        async def stream() -> None:
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})

        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        relaying, gone = asyncio.ensure_future(stream()), asyncio.ensure_future(disconnected())
        try:
            await asyncio.wait({relaying, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (relaying, gone):
                task.cancel()
            await asyncio.gather(relaying, gone, return_exceptions=True)
            await response.aclose()


def main() -> None:
    """``python -m tests.roundrobin PORT BACKEND_PORT...``: the proxy in a process of its own (bench)."""
    import sys

    port, *backends = (int(arg) for arg in sys.argv[1:])
    uvicorn.Server(uvicorn.Config(RoundRobin(backends, port), host="127.0.0.1", port=port, log_level="warning",
                                  lifespan="off")).run()


if __name__ == "__main__":
    main()
