"""Outbound network for replicas: off by default (as for tasks and sandboxes), on request; the
host's loopback stays out of reach either way. Locally the app reports its own network namespace."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests import workloads
from tests.deployments.support import ADMIN, create, fetch, wait_served, wait_status
from tests.doors import Door
from tests.gateway import Gateway, mint_key

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


@pytest.mark.usefixtures("local_only")
async def test_a_template_gives_its_network_and_an_update_takes_it_away(
        rest: Door, dep_gateway: Gateway, dep_data_dir: Path, dep_env: dict[str, str]) -> None:
    admin_key = mint_key(dep_data_dir, user=ADMIN)
    async with workloads.door_to("rest", dep_gateway, admin_key, dep_data_dir, dep_env) as admin:
        name = f"reporter-{uuid.uuid4().hex[:6]}"
        made = await admin.call("templates_create", {
            "name": name, "image": "python:3.12-slim", "port": 9000, "healthCheckPath": "/",
            "command": ["python3", "-c", REPORTER], "network": True,
            "envVars": [{"name": "GATEWAY_PORT", "value": dep_gateway.url.rsplit(":", 1)[1]}]})
        assert made.ok and made.body["template"]["network"] is True, made.body
        try:
            created = await create(rest, template=name)
            try:
                await wait_status(rest, created["name"], "Ready")
                assert (await rest.call("deployments_get", {"name": created["name"]})).body["network"] is True
                report = (await fetch(dep_gateway.url, created["url"], "/report")).text
                assert "ifaces=lo,tap0" in report and "host=unreachable" in report, report
                updated = await rest.call("deployments_update", {"name": created["name"], "network": False})
                assert updated.ok and updated.body["network"] is False, updated.body
                await wait_served(dep_gateway.url, created["url"], "ifaces=lo ", path="/report")
            finally:
                await rest.call("deployments_delete", {"name": created["name"]})
        finally:
            await admin.call("templates_delete", {"name": name})
