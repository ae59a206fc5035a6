"""Hostile clients over raw sockets: oversized headers, and slow headers or bodies, are cut off."""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.gateway import Gateway, mint_key
from tests.security.conftest import StartGateway


@pytest.fixture(scope="module")
def gateway(start_gateway: StartGateway) -> Gateway:
    return start_gateway(header_timeout_seconds="1", body_timeout_seconds="1", max_header_bytes="8192")


def exchange(gw: Gateway, data: bytes, within: float = 10.0) -> tuple[bytes, float]:
    """Send ``data``, then read until the server closes; returns the bytes and how long it took."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", gw.port), timeout=within) as sock:
        if data:
            sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received, time.monotonic() - started


def status_and_body(raw: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_oversized_headers_get_431(gateway: Gateway) -> None:
    raw, _ = exchange(gateway, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n")
    status, body = status_and_body(raw)
    assert status == 431 and body["status"] == 431


def test_headers_that_never_finish_get_408(gateway: Gateway) -> None:
    raw, took = exchange(gateway, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    status, body = status_and_body(raw)
    assert status == 408 and body["error"] == "request_timeout" and took < 5


def test_a_silent_connection_is_closed(gateway: Gateway) -> None:
    raw, took = exchange(gateway, b"")
    assert raw.startswith(b"HTTP/1.1 408") and took < 5


def test_a_body_that_never_finishes_gets_408(gateway: Gateway) -> None:
    key = mint_key(gateway.data_dir, user="slow@example.test")
    head = (f"POST /api/api-keys HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n").encode()
    raw, took = exchange(gateway, head + b'{"name": ')
    status, body = status_and_body(raw)
    assert status == 408 and body == {"error": "request_timeout", "message": body["message"], "status": 408}
    assert took < 5


def test_normal_keep_alive_requests_are_unaffected(gateway: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        for _ in range(2):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Fine: " + b"b" * 4000 + b"\r\n\r\n")
            status, body = status_and_body(read_response(sock))
            assert status == 200 and body["status"] == "ok"


def read_response(sock: socket.socket) -> bytes:
    """One complete response (headers, then Content-Length bytes of body) from a kept-alive connection."""
    raw = b""
    while b"\r\n\r\n" not in raw:
        raw += sock.recv(65536)
    head, _, body = raw.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body
