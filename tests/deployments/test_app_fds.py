"""A replica's app inherits only its stdin, stdout and stderr: never the agent's control or bridge
socket, through which it could run commands as the agent or answer for another port."""

from __future__ import annotations

import signal

import pytest

from tests.deployments.support import create, fetch, wait_status
from tests.doors import Door
from tests.gateway import Gateway

# Lists its open fds (before it opens any of its own) and what each points at, then serves that on /fds.
LISTER = r"""
import http.server, os
fds = "/proc/self/fd/"
seen = {fd: os.readlink(fds + fd) for fd in os.listdir(fds) if os.path.exists(fds + fd)}
report = " ".join(f"{fd}={target}" for fd, target in sorted(seen.items())).encode()
class Fds(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(report)
http.server.HTTPServer(("", 9000), Fds).serve_forever()
"""


@pytest.mark.usefixtures("local_only")  # on Kubernetes the container's fds are the kubelet's business
async def test_the_app_gets_no_socket_of_its_agent(rest: Door, dep_gateway: Gateway) -> None:
    created = await create(rest, image="python:3.12-slim", port=9000, command=["python3", "-c", LISTER])
    try:
        await wait_status(rest, created["name"], "Ready")
        response = await fetch(dep_gateway.url, created["url"], "/fds")
        fds = dict(item.split("=", 1) for item in response.text.split())
        assert response.status_code == 200 and {"0", "1", "2"} <= set(fds), response.text
        assert not any(target.startswith("socket:") for target in fds.values()), response.text
        assert set(fds) - {"0", "1", "2"} <= {"3"}, response.text  # 3: the listing's own directory, if any
    finally:
        await rest.call("deployments_delete", {"name": created["name"]})


# The shell's child reports the signal dispositions the app was started with (ignored ones stay ignored across
# exec), then a server hands that report out.
SIGNALS = r"""grep -E '^Sig(Ign|Blk):' /proc/self/status > signals.txt
exec python3 -c 'import http.server
report = open("signals.txt", "rb").read()
class Report(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(report)
http.server.HTTPServer(("", 9000), Report).serve_forever()'
"""


@pytest.mark.usefixtures("local_only")
async def test_the_app_starts_with_default_signals_none_blocked(rest: Door, dep_gateway: Gateway) -> None:
    created = await create(rest, image="python:3.12-slim", port=9000, command=["sh", "-c", SIGNALS])
    try:
        await wait_status(rest, created["name"], "Ready")
        response = await fetch(dep_gateway.url, created["url"], "/")
        masks = dict(line.split(":") for line in response.text.split("\n") if ":" in line)
        assert response.status_code == 200 and set(masks) == {"SigIgn", "SigBlk"}, response.text
        ignored, blocked = int(masks["SigIgn"], 16), int(masks["SigBlk"], 16)
        assert not ignored & (1 << (signal.SIGPIPE - 1)) and not ignored & (1 << (signal.SIGXFSZ - 1)), response.text
        assert blocked == 0, response.text
    finally:
        await rest.call("deployments_delete", {"name": created["name"]})
