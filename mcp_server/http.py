"""HTTP plumbing shared by every HTTP door: the error response and the request-body guard."""

from __future__ import annotations

import json
from typing import Any

import anyio
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_server.errors import KubegateError, PayloadTooLarge, RequestTimeout


def error_response(error: KubegateError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error.to_dict(), status_code=error.status, headers={**error.headers, **(headers or {})})


async def send_error(scope: Scope, receive: Receive, send: Send, error: KubegateError,
                     headers: dict[str, str] | None = None) -> None:
    await error_response(error, headers)(scope, receive, send)


MCP_PATH = "/api/mcp"
MCP_MESSAGE_KEY = "kubegate.mcp_message"
"""Where the first layer that reads a POST to the MCP endpoint leaves its parsed JSON (``None``
when it is not JSON), so the layers below neither read nor parse it again."""


def json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


class BodyGuardMiddleware:
    """Bound every request body: at most ``limit`` bytes (413) within ``timeout`` seconds (408).

    The size is checked from ``Content-Length`` and again while streaming. The clock starts
    with the request; waiting for a disconnect after the body (an open SSE stream) is not timed.
    """

    def __init__(self, app: ASGIApp, limit: int, timeout: float) -> None:
        self.app = app
        self.limit = limit
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self._refuse(scope, receive, send, _BodyTooLarge())
            return
        deadline = anyio.current_time() + self.timeout
        seen = 0
        body_done = False
        started = False

        async def guarded_receive() -> Message:
            nonlocal seen, body_done
            if body_done:
                return await receive()
            with anyio.move_on_after(deadline - anyio.current_time()) as waiting:
                message = await receive()
            if waiting.cancelled_caught:
                raise _SlowBody
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, guarded_receive, tracking_send)
        except (_BodyTooLarge, _SlowBody) as refusal:
            if not started:
                await self._refuse(scope, receive, send, refusal)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, refusal: Exception) -> None:
        if isinstance(refusal, _SlowBody):
            error: KubegateError = RequestTimeout(f"Request body not received within {self.timeout:g}s")
            await send_error(scope, receive, send, error, {"Connection": "close"})
            return
        await _drain(receive)
        await send_error(scope, receive, send, PayloadTooLarge(f"Request body is larger than {self.limit} bytes"))


class _BodyTooLarge(Exception):
    pass


class _SlowBody(Exception):
    pass


_DRAIN_LIMIT = 16 * 1024 * 1024
_DRAIN_SECONDS = 5.0


async def _drain(receive: Receive) -> None:
    """Read (and drop) what the client is still sending, up to a bound, before refusing it.

    Closing a connection with unread data makes the kernel answer with a reset, and the client
    then loses the 413 it was about to read. Past the bound the client is cut off regardless.
    """
    drained = 0
    with anyio.move_on_after(_DRAIN_SECONDS):
        while drained < _DRAIN_LIMIT:
            message = await receive()
            if message["type"] != "http.request":
                return
            drained += len(message.get("body", b""))
            if not message.get("more_body", False):
                return
