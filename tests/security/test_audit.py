"""The audit log: state-changing requests on every HTTP door, readable by administrators only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.gateway import Gateway, mint_key
from tests.security.conftest import StartGateway

MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def gateway(start_gateway: StartGateway) -> Gateway:
    return start_gateway(admin_emails="boss@example.test, chief@example.test", dev_login="1")


def events(gw: Gateway, key: str, **params: str) -> list[dict[str, object]]:
    response = httpx.get(f"{gw.url}/api/audit", params=params, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return list(response.json()["events"])


def test_state_changing_requests_are_recorded_with_who_what_when_where(gateway: Gateway) -> None:
    key = mint_key(gateway.data_dir, user="worker@example.test")
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=gateway.url, headers=auth) as http:
        created = http.post("/api/api-keys", json={"name": "audited"}).json()["apiKey"]
        http.get("/api/api-keys")
        http.post("/api/mcp", json={"method": "api-keys/list", "params": {}})
        http.post("/api/mcp", json={"method": "api-keys/revoke", "params": {"keyId": created["id"]}})
        http.delete("/api/api-keys/key_missing")
        call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "api_keys_create", "arguments": {"name": "via-mcp"}}}
        sessionless = http.post("/api/mcp", json=call, headers=MCP_HEADERS).status_code  # refused: no MCP session
        user_id = http.get("/auth/me").json()["user"]["id"]
    admin = mint_key(gateway.data_dir, user="Boss@example.test")
    mine = events(gateway, admin, userId=user_id)
    assert [(e["method"], e["path"], e["action"], e["status"]) for e in mine] == [
        ("POST", "/api/mcp", "api_keys_create", sessionless),
        ("DELETE", "/api/api-keys/key_missing", "api_keys_revoke", 404),
        ("POST", "/api/mcp", "api_keys_revoke", 200),
        ("POST", "/api/api-keys", "api_keys_create", 201),
    ]
    first = mine[-1]
    assert first["email"] == "worker@example.test" and first["authMethod"] == "api_key"
    assert first["clientIp"] == "127.0.0.1"
    stamp = datetime.fromisoformat(str(first["timestamp"]).replace("Z", "+00:00"))
    assert abs(datetime.now(UTC) - stamp) < timedelta(minutes=5)
    assert all("sk_live_" not in str(e) for e in mine)


def test_logins_are_recorded(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url) as http:
        user = http.post("/auth/dev-login", json={"email": "newcomer@example.test"}).json()["user"]
    admin = mint_key(gateway.data_dir, user="chief@example.test")
    (login,) = events(gateway, admin, userId=user["id"])
    assert (login["path"], login["action"], login["authMethod"], login["status"]) == (
        "/auth/dev-login", "login", "session", 200)


def test_only_administrators_may_read_it(gateway: Gateway) -> None:
    nobody = mint_key(gateway.data_dir, user="curious@example.test")
    refused = httpx.get(f"{gateway.url}/api/audit", headers={"Authorization": f"Bearer {nobody}"})
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    operator = mint_key(gateway.data_dir)  # the local operator's own key
    assert events(gateway, operator, limit="1")


def test_pages_follow_the_cursor(gateway: Gateway) -> None:
    admin = mint_key(gateway.data_dir, user="boss@example.test")
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {admin}"}) as http:
        for i in range(3):
            http.post("/api/api-keys", json={"name": f"page-{i}"})
        first = http.get("/api/audit", params={"limit": 2}).json()
        second = http.get("/api/audit", params={"limit": 2, "cursor": first["nextCursor"]}).json()
    ids = [e["id"] for e in first["events"] + second["events"]]
    assert len(ids) == 4 and len(set(ids)) == 4
