"""The edge every HTTP door shares: request ids, Host/Origin, hostile JSON, headers on refusals,
trusted proxies, the audit trail of keys and failed logins, /metrics, /readyz and JSON logs."""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.gateway import Gateway, free_port, kubegate_env, mint_key
from tests.security.conftest import StartGateway

MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
               "MCP-Protocol-Version": "2025-11-25"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
DEEP = b"[" * 50_000
TOKEN = "metrics-scraper-token"
NEWLINE = b"\n"


@pytest.fixture(scope="module")
def gateway(start_gateway: StartGateway) -> Gateway:
    return start_gateway(admin_emails="boss@edge.test", dev_login="1", access_log="1", log_format="json",
                         metrics_token=TOKEN, rate_limit_session="3", max_header_bytes="8192")


@pytest.fixture(scope="module")
def behind_proxy(start_gateway: StartGateway) -> Gateway:
    return start_gateway(trusted_proxies="127.0.0.1/32", admin_emails="boss@edge.test")


def shaped(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"error": code, "message": response.json()["message"], "status": status}


def audit(gw: Gateway, **params: str) -> list[dict[str, object]]:
    admin = mint_key(gw.data_dir, user="boss@edge.test")
    answer = httpx.get(f"{gw.url}/api/audit", params={"limit": "500", **params},
                       headers={"Authorization": f"Bearer {admin}"})
    assert answer.status_code == 200, answer.text
    return list(answer.json()["events"])


def test_every_answer_carries_a_request_id(gateway: Gateway) -> None:
    key = mint_key(gateway.data_dir, user="ids@edge.test")
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {key}"}) as http:
        assert http.get("/api/api-keys", headers={"X-Request-Id": "trace-123"}).headers["x-request-id"] == "trace-123"
        made = [http.get("/api/api-keys"), http.get("/api/nothing"), http.get("/healthz"),
                http.get("/api/api-keys", headers={"Authorization": "Bearer nope"}),
                http.post("/api/api-keys", content=b"x" * (1024 * 1024 + 1)),
                http.get("/api/api-keys", headers={"X-Request-Id": "not a sane id; " + "x" * 200})]
    assert [r.status_code for r in made] == [200, 404, 200, 401, 413, 200]
    ids = [r.headers["x-request-id"] for r in made]
    assert all(re.fullmatch(r"[0-9a-f]{24}", i) for i in ids) and len(set(ids)) == len(ids)
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:  # refused below ASGI
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n")
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    assert raw.startswith(b"HTTP/1.1 431") and b"\r\nx-request-id: " in raw


def test_a_foreign_host_or_origin_is_refused_the_same_way_on_every_door(gateway: Gateway) -> None:
    key = mint_key(gateway.data_dir, user="rebinding@edge.test")
    auth = {"Authorization": f"Bearer {key}"}
    doors = [("GET", "/api/api-keys", None), ("POST", "/api/mcp", {"method": "api-keys/list", "params": {}}),
             ("POST", "/api/mcp", INIT)]
    with httpx.Client(base_url=gateway.url, headers={**auth, **MCP_HEADERS}) as http:
        for method, path, body in doors:
            host = http.request(method, path, json=body, headers={"Host": f"evil.example:{gateway.port}"})
            shaped(host, 421, "misdirected_request")
            origin = http.request(method, path, json=body, headers={"Origin": "http://evil.example"})
            shaped(origin, 403, "forbidden")
            own = http.request(method, path, json=body, headers={"Origin": gateway.url})
            assert own.status_code == 200, (path, own.text)


def test_deeply_nested_json_is_a_400_on_every_door(gateway: Gateway) -> None:
    key = mint_key(gateway.data_dir, user="nested@edge.test")
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {key}", **MCP_HEADERS}) as http:
        shaped(http.post("/api/tasks", content=DEEP), 400, "bad_request")
        shaped(http.post("/api/mcp", content=DEEP), 400, "bad_request")  # JSON-RPC
        shaped(http.post("/api/mcp", content=b'{"method": "tasks/create", "params": ' + DEEP), 400, "bad_request")
        shaped(http.post("/auth/dev-login", content=DEEP), 400, "bad_request")
        assert http.get("/api/api-keys").status_code == 200  # and the gateway is fine
    assert "Traceback" not in gateway.logs() and "RecursionError" not in gateway.logs()


def test_a_413_carries_the_rate_limit_headers_of_a_known_caller(gateway: Gateway) -> None:
    key = mint_key(gateway.data_dir, user="big@edge.test")
    big = httpx.post(f"{gateway.url}/api/api-keys", content=b"x" * (1024 * 1024 + 1),
                     headers={"Authorization": f"Bearer {key}"})
    shaped(big, 413, "payload_too_large")
    assert big.headers["x-ratelimit-limit"] == "5000" and big.headers["x-ratelimit-remaining"] == "4999"
    anonymous = httpx.post(f"{gateway.url}/auth/dev-login", content=b"x" * (1024 * 1024 + 1))
    shaped(anonymous, 413, "payload_too_large")
    assert "x-ratelimit-limit" not in anonymous.headers


def test_forwarded_for_counts_only_from_a_trusted_proxy(gateway: Gateway, behind_proxy: Gateway) -> None:
    for gw, expected in ((gateway, "127.0.0.1"), (behind_proxy, "203.0.113.9")):
        key = mint_key(gw.data_dir, user="proxied@edge.test")
        made = httpx.post(f"{gw.url}/api/api-keys", json={"name": "via-proxy"},
                          headers={"Authorization": f"Bearer {key}", "X-Forwarded-For": "198.51.100.1, 203.0.113.9"})
        assert made.status_code == 201
        (row,) = [e for e in audit(gw) if e.get("email") == "proxied@edge.test"]
        assert row["clientIp"] == expected


def test_the_audit_log_names_the_key_and_failed_authentications(gateway: Gateway) -> None:
    key = mint_key(gateway.data_dir, user="keyed@edge.test")
    auth = {"Authorization": f"Bearer {key}"}
    (own,) = httpx.get(f"{gateway.url}/api/api-keys", headers=auth).json()["apiKeys"]
    assert httpx.post(f"{gateway.url}/api/api-keys", json={"name": "child"}, headers=auth).status_code == 201
    forged = "sk_live_" + "F" * 43
    refused = httpx.delete(f"{gateway.url}/api/api-keys/key_x", headers={"Authorization": f"Bearer {forged}"})
    assert refused.status_code == 401
    rows = audit(gateway)
    (acted,) = [e for e in rows if e.get("email") == "keyed@edge.test"]
    assert acted["keyId"] == own["id"] and acted["authMethod"] == "api_key"
    failed = [e for e in rows if e.get("action") == "authentication_failed" and e["path"] == "/api/api-keys/key_x"]
    assert len(failed) == 1 and failed[0]["status"] == 401 and failed[0].get("userId") is None
    assert failed[0]["authMethod"] == "api_key" and failed[0]["clientIp"] == "127.0.0.1"
    assert forged not in json.dumps(rows) and key not in json.dumps(rows)


def scrape(gw: Gateway) -> str:
    answer = httpx.get(f"{gw.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    return answer.text


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample, its labels matched exactly."""
    for line in text.splitlines():
        found = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if found and dict(re.findall(r'(\w+)="([^"]*)"', found.group(1))) == labels:
            return float(found.group(2))
    return 0.0


def test_metrics_count_requests_tools_runs_refusals_and_name_no_user(gateway: Gateway) -> None:
    assert httpx.get(f"{gateway.url}/metrics").status_code == 401
    key = mint_key(gateway.data_dir, user="counted@edge.test")
    before = scrape(gateway)
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {key}"}) as http:
        assert http.get("/api/api-keys").status_code == 200
        assert http.post("/api/mcp", json={"method": "api-keys/list", "params": {}}).status_code == 200
        task = http.post("/api/tasks", json={"name": "counted", "image": "busybox", "command": ["true"]}).json()
        deadline = time.monotonic() + 60
        while http.get(f"/api/tasks/{task['task']['id']}").json()["task"]["status"] != "completed":
            assert time.monotonic() < deadline, "the task did not complete"
            time.sleep(0.05)
    assert httpx.get(f"{gateway.url}/api/api-keys", headers={"Authorization": "Bearer wrong"}).status_code == 401
    with httpx.Client(base_url=gateway.url) as browser:
        assert browser.post("/auth/dev-login", json={"email": "limited@edge.test"}).status_code == 200
        assert [browser.get("/api/api-keys").status_code for _ in range(4)] == [200, 200, 200, 429]
    after = scrape(gateway)

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew("kubegate_http_requests_total", door="rest", status="200") >= 2
    assert grew("kubegate_http_requests_total", door="shorthand", status="200") == 1
    assert grew("kubegate_tool_calls_total", tool="api_keys_list", door="rest", outcome="ok") >= 1
    assert grew("kubegate_tool_calls_total", tool="api_keys_list", door="shorthand", outcome="ok") == 1
    assert grew("kubegate_tool_call_duration_seconds_count", tool="tasks_create") == 1
    assert grew("kubegate_runs_total", runtime="local", kind="task", event="started") == 1
    assert grew("kubegate_runs_total", runtime="local", kind="task", event="finished") == 1
    assert grew("kubegate_auth_failures_total", credential="api_key") == 1
    assert grew("kubegate_rate_limit_rejections_total", credential="session") == 1
    assert "edge.test" not in after and "user_" not in after and "sk_live_" not in after


def test_readyz_says_what_is_ready(gateway: Gateway) -> None:
    ready = httpx.get(f"{gateway.url}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "checks": {"store": "ok", "runtime": "ok", "engine": "ok"}}


def test_logs_are_json_lines_with_the_request_and_no_secret(gateway: Gateway) -> None:
    key = mint_key(gateway.data_dir, user="logged@edge.test")
    answer = httpx.get(f"{gateway.url}/api/api-keys", headers={"Authorization": f"Bearer {key}",
                                                                "X-Request-Id": "trace-json-1"})
    assert answer.status_code == 200
    deadline = time.monotonic() + 10
    while '"trace-json-1"' not in gateway.logs():
        assert time.monotonic() < deadline, "the request was not logged"
        time.sleep(0.05)
    lines = [json.loads(line) for line in gateway.logs().splitlines() if line.startswith("{")]
    (entry,) = [e for e in lines if e.get("request_id") == "trace-json-1"]
    assert entry["door"] == "rest" and entry["tool"] == "api_keys_list" and entry["status"] == 200
    assert str(entry["user_id"]).startswith("user_") and entry["level"] == "info"
    assert key not in gateway.logs()


def _instructions(gateway: Gateway) -> str:
    key = mint_key(gateway.data_dir, user="instructed@edge.test")
    answer = httpx.post(f"{gateway.url}/api/mcp", json=INIT, headers={**MCP_HEADERS, "Authorization": f"Bearer {key}"})
    data = next(line[5:] for line in answer.text.splitlines() if line.startswith("data:"))
    return str(json.loads(data)["result"]["instructions"])


def test_the_mcp_instructions_name_only_what_exists(gateway: Gateway, start_gateway: StartGateway) -> None:
    instructions = _instructions(gateway)
    assert "tasks" in instructions and "workflows" in instructions and "API keys" in instructions
    assert "sandboxes (" in instructions and "read_file" in instructions
    assert "deployments (" in instructions and "metrics" in instructions
    # A gateway serving fewer toolsets names only those: the text comes from the registry it serves.
    narrow = _instructions(start_gateway(toolsets="tasks,api_keys"))
    assert "tasks" in narrow and "API keys" in narrow
    assert "deployments" not in narrow and "sandboxes" not in narrow and "workflows" not in narrow


def test_readyz_on_kubernetes_needs_the_api_server(start_gateway: StartGateway, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    cluster = subprocess.Popen([sys.executable, "-m", "k8s.sim", "--port", str(free_port()), "--kubeconfig",
                                str(kubeconfig)], stdout=subprocess.PIPE, text=True)
    try:
        assert cluster.stdout is not None and "fake cluster at" in cluster.stdout.readline()
        gw = start_gateway(runtime="kubernetes", kubeconfig=str(kubeconfig))
        ready = httpx.get(f"{gw.url}/readyz", timeout=30)
        assert ready.status_code == 200 and ready.json()["checks"]["runtime"] == "ok"
    finally:
        cluster.terminate()
        cluster.wait(timeout=30)
    refused = httpx.get(f"{gw.url}/readyz", timeout=30)
    assert refused.status_code == 503 and refused.json()["status"] == "unavailable"
    assert refused.json()["checks"]["runtime"].startswith("the Kubernetes API server does not answer")
    assert refused.json()["checks"]["store"] == "ok"
    assert httpx.get(f"{gw.url}/healthz").status_code == 200  # alive, just not ready


async def test_a_wait_stops_with_401_when_its_login_session_ends(gateway: Gateway) -> None:
    def in_flight() -> float:
        return sample(scrape(gateway), "kubegate_tool_calls_in_flight", tool="tasks_wait")

    async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as browser:
        login = await browser.post("/auth/dev-login", json={"email": "waiter@edge.test"})
        csrf = {"X-CSRF-Token": login.json()["csrfToken"]}
        task = await browser.post("/api/tasks", headers=csrf, json={
            "name": "sleeper", "image": "busybox", "command": ["sleep", "120"]})
        assert task.status_code == 201, task.text
        before = in_flight()
        wait = asyncio.create_task(browser.post("/api/mcp", headers=csrf, json={
            "method": "tasks/wait", "params": {"taskId": task.json()["task"]["id"], "timeoutSeconds": 100}}))
        deadline = time.monotonic() + 60
        while in_flight() <= before and not wait.done():
            assert time.monotonic() < deadline, "the wait never started"
            await asyncio.sleep(0.05)
        assert not wait.done(), wait.result().text
        assert (await browser.post("/auth/logout", headers=csrf)).status_code == 204
        ended = await asyncio.wait_for(wait, 60)  # the wait itself would run for 100 s
    shaped(ended, 401, "unauthorized")
    owner = mint_key(gateway.data_dir, user="waiter@edge.test")
    removed = httpx.delete(f"{gateway.url}/api/tasks/{task.json()['task']['id']}",
                           headers={"Authorization": f"Bearer {owner}"})
    assert removed.status_code == 200


def test_unreadable_lines_on_stdio_get_json_rpc_errors_with_id_null(tmp_path: Path) -> None:
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    lines = [json.dumps(INIT).encode(), json.dumps(initialized).encode(), DEEP, b"not json", b'{"a": 1}',
             json.dumps({"jsonrpc": "2.0", "id": 2, "method": "ping"}).encode()]
    with subprocess.Popen([sys.executable, "-m", "mcp_server.cli", "stdio"], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=kubegate_env(tmp_path / "data")) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(b"\n".join(lines) + b"\n")
        proc.stdin.flush()
        answers = [json.loads(line) for line in _lines_within(proc.stdout.fileno(), 5, 120)]  # stdin stays open
        proc.stdin.close()
        log = proc.stderr.read().decode() if proc.stderr else ""
        proc.wait(60)
    assert [a.get("id") for a in answers] == [1, None, None, None, 2], answers  # every line answered, in order
    assert [a["error"]["code"] for a in answers[1:4]] == [-32700, -32700, -32600]
    assert "Parse error" in answers[1]["error"]["message"] and answers[4]["result"] == {}
    assert "Traceback" not in log and "RecursionError" not in log and "not json" not in log


def _lines_within(fd: int, count: int, seconds: float) -> list[bytes]:
    """The next ``count`` lines of a pipe, failing (rather than hanging) if they take over ``seconds``."""
    deadline, data = time.monotonic() + seconds, b""
    while data.count(NEWLINE) < count:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"kubegate stdio answered only {data.count(NEWLINE)} of {count} lines"
        chunk = os.read(fd, 1 << 16)
        assert chunk, "kubegate stdio closed its output"
        data += chunk
    return data.split(NEWLINE)[:count]
