"""Outbound network for replicas: off by default (as for tasks and sandboxes), on request; the
host's loopback stays out of reach either way. Locally the app reports its own network namespace."""

from __future__ import annotations

import pytest

from tests.deployments.support import create, fetch, wait_status
from tests.doors import Door
from tests.gateway import Gateway

# Answers GET /report with its interfaces, its default route, and whether it reached the gateway on the host.
REPORTER = r"""
import http.server, os, socket
def reach(host):
    try:
        socket.create_connection((host, int(os.environ["GATEWAY_PORT"])), timeout=3).close()
        return "REACHED"
    except OSError as exc:
        return "unreachable"
class Report(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/report":  # the health path answers at once; the report may wait on a connect
            self.send_response(204)
            self.end_headers()
            return
        routes = [line.split()[1] for line in open("/proc/net/route").read().splitlines()[1:]]
        ifaces = sorted(line.split(":")[0].strip() for line in open("/proc/net/dev").readlines()[2:])
        body = " ".join(["ifaces=" + ",".join(ifaces),
                         "default=" + str("00000000" in routes), "host=" + reach("10.0.2.2"),
                         "loopback=" + reach("127.0.0.1"), "end"])
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body.encode())
http.server.HTTPServer(("", 9000), Report).serve_forever()
"""


@pytest.mark.usefixtures("local_only")  # the fake cluster's Pods get a slirp namespace whatever their policy says
async def test_replicas_reach_out_on_request_and_never_the_host(rest: Door, dep_gateway: Gateway) -> None:
    port = dep_gateway.url.rsplit(":", 1)[1]
    made = {network: await create(rest, image="python:3.12-slim", port=9000, command=["python3", "-c", REPORTER],
                                  envVars={"GATEWAY_PORT": port}, **({"network": True} if network else {}))
            for network in (True, False)}
    try:
        for network, created in made.items():
            await wait_status(rest, created["name"], "Ready")
            got = await rest.call("deployments_get", {"name": created["name"]})
            assert got.body["network"] is network
            response = await fetch(dep_gateway.url, created["url"], "/report")
            report = response.text
            assert response.status_code == 200 and report.endswith("end"), report
            if network:
                assert "ifaces=lo,tap0" in report and "default=True" in report, report
            else:
                assert "ifaces=lo " in report and "default=False" in report, report
            assert "host=unreachable" in report and "loopback=unreachable" in report, report
    finally:
        for created in made.values():
            await rest.call("deployments_delete", {"name": created["name"]})
