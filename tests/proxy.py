"""A small round-robin TCP proxy for the replica tests: each new connection goes to the next backend.

A backend that refuses the connection (stopped, restarting) is skipped for the next one, as a
load balancer's health checks would, so a client sees a refusal only when every backend refuses.
Clients that want one replica per request open one connection per request.
"""

from __future__ import annotations

import itertools
import socket
import socketserver
import threading
from collections.abc import Sequence


class _Handler(socketserver.BaseRequestHandler):
    server: RoundRobin

    def handle(self) -> None:
        upstream = self.server.connect()
        if upstream is None:
            return
        with upstream:
            pump = threading.Thread(target=_copy, args=(upstream, self.request), daemon=True)
            pump.start()
            _copy(self.request, upstream)
            pump.join()


def _copy(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        try:
            target.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class RoundRobin(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, ports: Sequence[int], port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.ports = list(ports)
        self._next = itertools.count()
        self._lock = threading.Lock()
        self.chosen: list[int] = []
        """The backend port of every connection made, in order."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def connect(self) -> socket.socket | None:
        with self._lock:
            first = next(self._next)
        for offset in range(len(self.ports)):
            port = self.ports[(first + offset) % len(self.ports)]
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=5)
            except OSError:
                continue
            conn.settimeout(None)
            with self._lock:
                self.chosen.append(port)
            return conn
        return None

    def __enter__(self) -> RoundRobin:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
