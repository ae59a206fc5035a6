"""Guards against hostile clients, below and just above the ASGI line.

uvicorn's httptools protocol neither bounds the size of request headers nor times out a
client that sends them slowly (its keep-alive timeout only runs between requests), so
``guarded_http_protocol`` subclasses it: headers must arrive within ``header_timeout``
seconds of the connection (or of the request's first byte on a kept-alive connection) and
within ``max_header_bytes``, else the client gets 408 or 431 and the connection is closed.
The body is bounded in size and time by the edge (``mcp_server.http.BodyLimit``). The access
log never shows query strings of ``/auth`` paths, where the OAuth code and state travel.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mcp_server.errors import HeadersTooLarge, KubegateError, RequestTimeout
from mcp_server.http import dumps

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


def raw_error(error: KubegateError) -> bytes:
    """A complete HTTP/1.1 error response that closes the connection, for use below ASGI."""
    body = dumps(error.to_dict())
    head = (f"HTTP/1.1 {error.status} ".encode() + _REASONS.get(error.status, b"Error") + b"\r\n"
            b"content-type: application/json\r\nconnection: close\r\n"
            + f"x-request-id: {secrets.token_hex(12)}\r\n".encode()
            + f"content-length: {len(body)}\r\n\r\n".encode())
    return head + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header read timeout and a header size limit."""

    header_timeout: ClassVar[float] = 10.0
    max_header_bytes: ClassVar[int] = 64 * 1024
    _timer: asyncio.TimerHandle | None = None
    _header_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._begin_headers()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._timer is None:
            self._begin_headers()

    def data_received(self, data: bytes) -> None:
        if self._timer is None and (self.cycle is None or self.cycle.response_complete):
            self._begin_headers()  # the next request on a kept-alive connection
        if self._timer is not None:
            # Count only up to the end of the header block: a body may share the chunk.
            end = data.find(b"\r\n\r\n")
            self._header_bytes += end + 4 if end >= 0 else len(data)
            if self._header_bytes > self.max_header_bytes:
                self._refuse(HeadersTooLarge(f"Request headers are larger than {self.max_header_bytes} bytes"))
                return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._end_headers()
        super().on_headers_complete()
        if self.cycle is not None:
            self.cycle.transport = _Coalescing(self.transport, self.loop)  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_headers()
        super().connection_lost(exc)

    def _begin_headers(self) -> None:
        self._header_bytes = 0
        self._timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _end_headers(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _headers_too_slow(self) -> None:
        self._timer = None
        if not self.transport.is_closing():
            self._refuse(RequestTimeout(f"Request headers not received within {self.header_timeout:g}s"))

    def _refuse(self, error: KubegateError) -> None:
        self._end_headers()
        self.transport.write(raw_error(error))
        self.transport.close()


class _Coalescing:
    """The transport as a response sees it: a head is held until its body follows, so one send
    carries both.

    uvicorn writes a response's status line and headers, then its body, as two writes, so a
    small JSON answer costs two ``send`` system calls; on a busy machine each was measured at
    as much as the request's own work (``bench/rest_overhead.py``). A head that no body follows
    within the loop iteration (an SSE stream) is written at the end of that iteration.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        if self._held is not None:
            data, self._held = self._held + data, None
        if data.startswith(b"HTTP/1.1 ") and data.endswith(b"\r\n\r\n"):
            self._held = data
            self._loop.call_soon(self._flush)
            return
        self._transport.write(data)

    def _flush(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def guarded_http_protocol(header_timeout: float, max_header_bytes: int) -> type[asyncio.Protocol]:
    """The guarded protocol class with these limits, for ``uvicorn.Config(http=...)``."""
    limits = {"header_timeout": header_timeout, "max_header_bytes": max_header_bytes}
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), limits)


class RedactAuthQueries(logging.Filter):
    """Drop the query string of ``/auth/...`` requests from uvicorn's access log lines."""

    PATH_ARG: ClassVar[int] = 2

    def filter(self, record: logging.LogRecord) -> bool:
        args: Any = record.args
        if isinstance(args, tuple) and len(args) > self.PATH_ARG and isinstance(args[self.PATH_ARG], str):
            path = args[self.PATH_ARG]
            if path.startswith("/auth/") and "?" in path:
                record.args = (*args[: self.PATH_ARG], path.split("?", 1)[0] + "?[redacted]",
                               *args[self.PATH_ARG + 1:])
        return True


def install_log_redaction() -> None:
    logging.getLogger("uvicorn.access").addFilter(RedactAuthQueries())
