"""JSON-RPC errors for what arrives on ``kubegate stdio`` and is not a message at all.

The SDK's stdio transport hands a line it cannot read (not JSON, JSON nested too deeply for its
parser, JSON that is no JSON-RPC message) to the session as an exception, which drops it: the
client waits for an answer that never comes. JSON-RPC 2.0 says such a line gets an error with
``id: null``: -32700 (Parse error) when the line is not JSON, -32600 (Invalid Request) when it is
JSON but no message. ``answer_unreadable`` sits between the transport and the server and sends
that answer through the transport's own write stream (so frames never interleave); the line's
content is never echoed or logged.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import mcp_types as types
from anyio.streams.memory import MemoryObjectReceiveStream
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

log = logging.getLogger(__name__)

Incoming = SessionMessage | Exception


def error_for(exc: Exception) -> types.JSONRPCError:
    """The JSON-RPC error answering a line the transport could not turn into a message."""
    kinds = {error["type"] for error in exc.errors()} if isinstance(exc, ValidationError) else {"json_invalid"}
    if kinds & {"json_invalid", "recursion_loop"}:
        data = types.ErrorData(code=types.PARSE_ERROR, message=(
            "Parse error: each line on stdin must be one JSON-RPC message; this one is not valid JSON"
            " or is nested too deeply"))
    else:
        data = types.ErrorData(code=types.INVALID_REQUEST, message=(
            "Invalid Request: this line is JSON but not a JSON-RPC 2.0 request, notification or response"))
    return types.JSONRPCError(jsonrpc="2.0", id=None, error=data)


@asynccontextmanager
async def answer_unreadable(read: anyio.abc.ObjectReceiveStream[Incoming],
                            write: anyio.abc.ObjectSendStream[SessionMessage]
                            ) -> AsyncIterator[MemoryObjectReceiveStream[Incoming]]:
    """The transport's read stream with unreadable lines answered and taken out."""
    send, receive = anyio.create_memory_object_stream[Incoming](0)

    async def forward() -> None:
        async with send:
            async for item in read:
                if isinstance(item, Exception):
                    log.info("stdio: answered an unreadable line (%s)", type(item).__name__)
                    await write.send(SessionMessage(error_for(item)))
                else:
                    await send.send(item)

    async with anyio.create_task_group() as group:
        group.start_soon(forward)
        async with receive:
            yield receive
        group.cancel_scope.cancel()
