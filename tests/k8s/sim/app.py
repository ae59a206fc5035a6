"""A small HTTP app for Deployment tests: answers ``/healthz`` (200) and ``/`` with ``$GREETING``.

It listens on every address of its Pod's network (``k8s.sim.podnet`` forwards the Pod's address to
it); with ``SO_REUSEPORT``, so that replicas still both listen where the fake cluster cannot give
Pods networks of their own (not root) and they share the host's. ``CRASH_AFTER`` (seconds) makes
it exit 3 after printing a last line.
"""

from __future__ import annotations

import sys
from pathlib import Path

SOURCE = r'''
import http.server, os, socket, sys, threading, time
port = int(sys.argv[1])
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 200 if self.path in ("/", "/healthz") else 404
        body = os.environ.get("GREETING", "hello").encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class Server(http.server.ThreadingHTTPServer):
    def server_bind(self):
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()
crash = os.environ.get("CRASH_AFTER")
if crash is not None:
    time.sleep(float(crash))
    print("fatal: the database is unreachable", flush=True)
    sys.exit(3)
server = Server(("0.0.0.0", port), Handler)
print(f"listening on {port} as {os.environ.get('HOSTNAME')}", flush=True)
server.serve_forever()
'''


def command(directory: Path, port: int) -> list[str]:
    """The app's command line: the script written into ``directory``, run by this Python."""
    path = directory / "app.py"
    path.write_text(SOURCE)
    return [sys.executable, str(path), str(port)]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
