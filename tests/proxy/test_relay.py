"""The proxy's lean relay (``proxy/relay.py``) against a real server on 127.0.0.1 that answers in the
ways HTTP allows: chunked, delimited by closing the connection, after an interim 103, or not at all.

Driven through ``Forwarder.http`` as the sandbox site drives it, with a TCP endpoint.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from starlette.types import Message

from mcp_server.proxy.forward import Forwarder
from mcp_server.runtime.base import Endpoint

ANSWERS = {
    b"/chunked": b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-kind: chunked\r\n\r\n"
                 b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    b"/close": b"HTTP/1.0 201 Created\r\nx-kind: close\r\n\r\nuntil the end",
    b"/early": b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n"
               b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-kind: final\r\n\r\nok",
    b"/silent": b"",
}


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[Endpoint, list[bytes]]]:
    heads: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        heads.append(head)
        writer.write(ANSWERS[head.split(b" ")[1].split(b"?")[0]])
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield Endpoint(host="127.0.0.1", port=port), heads


async def forward(endpoint: Endpoint, path: str, query: bytes = b"") -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": query,
             "headers": [(b"host", b"web-abc.sandboxes.localhost"), (b"connection", b"keep-alive")],
             "client": ("10.0.0.9", 5000), "scheme": "http"}
    forwarder = Forwarder()
    try:
        await forwarder.http(endpoint, scope, receive, send, list(scope["headers"]))
    finally:
        await forwarder.close()
    start = sent[0]
    assert sent[-1] == {"type": "http.response.body", "body": b""} or not sent[-1].get("more_body")
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], dict(start["headers"]), body


async def test_a_chunked_answer_arrives_whole_and_unchunked(upstream: tuple[Endpoint, list[bytes]]) -> None:
    endpoint, heads = upstream
    status, headers, body = await forward(endpoint, "/chunked", b"a=1")
    assert (status, body, headers[b"x-kind"]) == (200, b"hello world", b"chunked")
    assert b"transfer-encoding" not in headers  # hop-by-hop: the gateway frames its own answer
    head = heads[0].lower()
    assert head.startswith(b"get /chunked?a=1 http/1.1\r\n")
    assert b"x-forwarded-for: 10.0.0.9" in head and b"host: web-abc.sandboxes.localhost" in head
    assert b"keep-alive" not in head  # the client's hop-by-hop header is not passed on


async def test_an_answer_ended_by_closing_the_connection(upstream: tuple[Endpoint, list[bytes]]) -> None:
    status, headers, body = await forward(upstream[0], "/close")
    assert (status, body, headers[b"x-kind"]) == (201, b"until the end", b"close")


async def test_an_interim_answer_is_skipped_for_the_final_one(upstream: tuple[Endpoint, list[bytes]]) -> None:
    status, headers, body = await forward(upstream[0], "/early")
    assert (status, body, headers[b"x-kind"]) == (200, b"ok", b"final")
    assert b"link" not in headers  # the interim answer's headers are not the final one's


async def test_no_answer_is_502(upstream: tuple[Endpoint, list[bytes]]) -> None:
    status, _, body = await forward(upstream[0], "/silent")
    assert status == 502 and b"without an answer" in body


async def test_nothing_listening_is_502() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    status, _, body = await forward(Endpoint(host="127.0.0.1", port=port), "/")
    assert status == 502 and b"Nothing answers" in body
