"""HTTP plumbing shared by every HTTP door: the error response, JSON bodies, the MCP path."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anyio
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from mcp_server.errors import BadRequest, KubegateError, PayloadTooLarge, RequestTimeout


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
    """The parsed JSON, or ``None`` when it is not JSON; ``BadRequest`` when nested too deeply."""
    try:
        return parse_json(body)
    except _Malformed:
        return None


class _Malformed(BadRequest):
    pass


def parse_json(body: bytes) -> Any:
    """Parse a request body; malformed or absurdly nested JSON is a 400, never a 500."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _Malformed(f"Malformed JSON body: {exc}") from None
    except RecursionError:
        raise BadRequest("The JSON body is nested too deeply") from None


def shorthand_tool(method: str) -> str:
    """The tool a shorthand ``method`` names: ``api-keys/list`` -> ``api_keys_list``."""
    return method.strip("/").replace("/", "_").replace("-", "_")


def mcp_tool(message: Any) -> str | None:
    """The tool a JSON-RPC ``tools/call`` or a shorthand request names, else ``None``."""
    if not isinstance(message, dict) or not isinstance(message.get("method"), str):
        return None
    if is_shorthand(message):
        return shorthand_tool(message["method"])
    params = message.get("params")
    if message["method"] == "tools/call" and isinstance(params, dict) and isinstance(params.get("name"), str):
        return str(params["name"])
    return None


def is_shorthand(message: Any) -> bool:
    """The spec's shorthand: ``{"method": "a/b", "params": {...}}`` without a ``jsonrpc`` member."""
    return isinstance(message, dict) and "jsonrpc" not in message and isinstance(message.get("method"), str)


def dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


class BodyLimit:
    """Bound a request body: at most ``limit`` bytes (413) within ``timeout`` seconds (408).

    The size is checked from ``Content-Length`` and again while streaming. The clock starts
    with the request; waiting for a disconnect after the body (an open SSE stream) is not timed.
    """

    def __init__(self, limit: int, timeout: float) -> None:
        self.limit = limit
        self.timeout = timeout

    def declared_too_large(self, scope: Scope) -> bool:
        for name, length in scope["headers"]:
            if name == b"content-length":
                return not length.isdigit() or int(length) > self.limit
        return False

    def wrap(self, receive: Receive) -> Receive:
        """``receive`` that raises ``BodyTooLarge`` or ``SlowBody`` instead of going over a bound.

        The deadline is asyncio's own timeout rather than an anyio cancel scope: every request
        with a body passes here, and a cancel scope's bookkeeping cost several times as much
        (``bench/mcp_overhead.py``). The two nest correctly: an outer anyio cancellation passes
        through it as a ``CancelledError``, never as a timeout.
        """
        deadline = asyncio.get_running_loop().time() + self.timeout
        seen = 0
        body_done = False
        limit = self.limit

        async def guarded_receive() -> Message:
            nonlocal seen, body_done
            if body_done:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise SlowBody from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        return guarded_receive

    async def refusal(self, refusal: BodyTooLarge | SlowBody, receive: Receive) -> tuple[KubegateError, dict[str, str]]:
        """The answer to a refused body; a too-large one is drained first (see ``_drain``)."""
        if isinstance(refusal, SlowBody):
            return RequestTimeout(f"Request body not received within {self.timeout:g}s"), {"Connection": "close"}
        await _drain(receive)
        return PayloadTooLarge(f"Request body is larger than {self.limit} bytes"), {}


class BodyTooLarge(Exception):
    pass


class SlowBody(Exception):
    pass


async def read_body(receive: Receive) -> tuple[bytes, list[Message]]:
    """The whole body, and the messages it came in (to replay to the app)."""
    chunks, messages = [], []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks), messages


def replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


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
