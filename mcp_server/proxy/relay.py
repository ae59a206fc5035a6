"""A lean HTTP/1.1 relay for the commonest proxied request: one without a body, not ``HEAD``.

Each such request opens a connection to the workload's endpoint, writes the head once and
parses the answer with ``httptools`` (the C parser uvicorn uses), passing the status, headers
and body chunks on as they arrive. ``httpcore``'s pool, locks and pure-Python ``h11`` parser
cost the gateway about 1 ms of CPU per proxied request, more than the sandbox's own server
spent answering it (``bench/sandboxes.py``), and its keep-alive saved nothing with servers
that close after each answer (``python3 -m http.server``). Requests with a body and ``HEAD``
(whose answer has a length but no body) keep the ``httpcore`` path in ``forward``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
from starlette.types import Send

Headers = list[tuple[bytes, bytes]]


class _Answer:
    """``httptools`` callbacks: what has arrived of the workload's answer so far."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.headers: Headers = []
        self.head_done = False
        self.interim = False
        self.complete = False
        self.chunks: list[bytes] = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.parser.get_status_code() < 200:  # 103 Early Hints and the like: the final answer follows
            self.interim, self.headers = True, []
        else:
            self.head_done = True

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
        else:
            self.complete = True


def request_head(method: str, target: str, headers: Headers) -> bytes:
    lines = [f"{method} {target} HTTP/1.1".encode("latin-1")]
    lines += [name + b": " + value for name, value in headers]
    lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def relay(streams: tuple[asyncio.StreamReader, asyncio.StreamWriter], head: bytes, send: Send,
                kept: Any) -> bool:
    """Send ``head``, pass the answer to ``send``; False when no answer began (the caller says 502).

    ``kept`` filters the answer's headers (hop-by-hop ones dropped). An answer cut short after it
    began is ended there, which the client sees as a short body.
    """
    reader, writer = streams
    answer = _Answer()
    started = False
    try:
        writer.write(head)
        while not answer.complete:
            data = await reader.read(65536)
            if not data:
                break  # the end of a body without a length, or an answer cut short
            answer.parser.feed_data(data)
            if answer.head_done and not started:
                started = True
                await send({"type": "http.response.start", "status": answer.parser.get_status_code(),
                            "headers": kept(answer.headers)})
            if started and answer.chunks:
                chunks, answer.chunks = answer.chunks, []
                for chunk in chunks:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except (OSError, httptools.HttpParserError):
        pass
    finally:
        writer.close()
    if started:
        await send({"type": "http.response.body", "body": b""})
    return started
