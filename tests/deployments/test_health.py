"""Readiness is the health path's answer: an app that answers it with 404 is never Ready, nor served."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import anyio
import httpx
import pytest

from tests.deployments.support import ADMIN, create, fetch, wait_status
from tests.doors import Door, open_door
from tests.gateway import Gateway, mint_key


async def test_a_bad_health_path_never_becomes_ready(dep_gateway: Gateway, dep_data_dir: Path) -> None:
    admin_key = mint_key(dep_data_dir, user=ADMIN)
    async with open_door("rest", url=dep_gateway.url, stateless_url=dep_gateway.url, key=admin_key,
                         data_dir=dep_data_dir) as admin:
        base = (await admin.call("templates_get", {"name": "static-site"})).body["template"]
        made = await admin.call("templates_create", {"name": "hello-bad-health", "image": base["image"],
                                                     "command": base["command"], "healthCheckPath": "/missing"})
        assert made.ok, made.body
        created = await create(admin, template="hello-bad-health")
        name = created["name"]
        try:
            # The site runs and answers its health path again and again: 404, as it has no /missing (the local
            # runtime's probe speaks HTTP/1.0, a kubelet's HTTP/1.1).
            with anyio.fail_after(60):
                while True:
                    lines = (await admin.call("deployments_logs", {"name": name})).body["lines"]
                    probed = ['"GET /missing HTTP/1.' in line["text"] and '" 404 ' in line["text"] for line in lines]
                    if sum(probed) >= 5:
                        break
                    await anyio.sleep(0.05)
            status = (await admin.call("deployments_status", {"name": name})).body
            assert status["status"] == "Provisioning" and status["readyReplicas"] == 0, status
            assert (await fetch(dep_gateway.url, created["url"])).status_code == 503
        finally:
            await admin.call("deployments_delete", {"name": name})




# Healthy, except for health checks FAIL_AT (a comma-separated list, counted from 1), or every one from FAIL_FROM
# on: those get 500. The health path is "/" (the default); any other path answers how many checks came so far.
FLAKY_HEALTH = r"""
import http.server, os
fail_at = {int(n) for n in os.environ.get("FAIL_AT", "0").split(",")}
fail_from = int(os.environ.get("FAIL_FROM", "0"))
checks = [0]
class App(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 200
        if self.path == "/":
            checks[0] += 1
            if checks[0] in fail_at or 0 < fail_from <= checks[0]:
                code = 500
        self.send_response(code)
        self.end_headers()
        self.wfile.write(str(checks[0]).encode())
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("", 9000), App).serve_forever()
"""


@pytest.mark.usefixtures("local_only")  # on Kubernetes it is the kubelet's failureThreshold (3 in the manifest)
async def test_two_failed_health_checks_keep_a_ready_app_in_service_three_take_it_out(
        rest: Door, dep_gateway: Gateway) -> None:
    app = {"image": "python:3.12-slim", "port": 9000, "command": ["python3", "-c", FLAKY_HEALTH]}
    # Check 1 makes both Ready. "flaky" fails checks 2 and 3, then passes; "down" fails every check from 2 on.
    flaky = await create(rest, **app, envVars={"FAIL_AT": "2,3"})
    down = await create(rest, **app, envVars={"FAIL_FROM": "2"})
    try:
        for created in (flaky, down):
            await wait_status(rest, created["name"], "Ready")
        checks, asked, down_status = 0, 0, "Ready"
        async with httpx.AsyncClient(base_url=dep_gateway.url, timeout=30,
                                     headers={"Host": urlsplit(flaky["url"]).netloc}) as client:
            with anyio.fail_after(60):  # a ready app is checked every 2 s
                while checks < 5 or down_status == "Ready":
                    answer = await client.get("/checks")  # back to back: a moment out of service is seen
                    assert answer.status_code == 200, (checks, answer.text)
                    checks, asked = int(answer.text), asked + 1
                    if asked % 20 == 0:
                        status = (await rest.call("deployments_status", {"name": flaky["name"]})).body["status"]
                        assert status == "Ready", (checks, status)
                        down_status = (await rest.call("deployments_status", {"name": down["name"]})).body["status"]
        assert (await fetch(dep_gateway.url, down["url"])).status_code == 503  # three failed in a row: out
    finally:
        for created in (flaky, down):
            await rest.call("deployments_delete", {"name": created["name"]})
