"""Credentials on the HTTP doors: what is refused, how, and that MCP clients get a challenge."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from mcp_server.auth.keys import digest
from tests.doors import open_door
from tests.gateway import Gateway, mint_key

MCP_INIT = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _expire(data_dir: Path, key: str) -> None:
    with sqlite3.connect(data_dir / "kubegate.db") as conn:
        conn.execute("UPDATE api_keys SET expires_at = '2000-01-01T00:00:00.000000Z' WHERE key_hash = ?",
                     (digest(key),))


@pytest.mark.parametrize("case", ["none", "malformed", "wrong", "revoked", "expired"])
async def test_bad_credentials_get_401_on_rest_and_mcp(case: str, gateway: Gateway, data_dir: Path) -> None:
    key = mint_key(data_dir, user="auth-cases@example.test")
    headers: dict[str, str] = {}
    if case == "malformed":
        headers["Authorization"] = "Basic dXNlcjpwYXNz"
    elif case == "wrong":
        headers["Authorization"] = "Bearer sk_live_" + "x" * 43
    elif case in ("revoked", "expired"):
        headers["Authorization"] = f"Bearer {key}"
        async with httpx.AsyncClient(base_url=gateway.url, headers=headers) as http:
            me = (await http.get("/api/api-keys")).json()["apiKeys"][0]
            if case == "revoked":
                assert (await http.delete(f"/api/api-keys/{me['id']}")).status_code == 200
        if case == "expired":
            _expire(data_dir, key)
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers) as http:
        rest = await http.get("/api/api-keys")
        mcp = await http.post("/api/mcp", json=MCP_INIT, headers=MCP_HEADERS)
    for response in (rest, mcp):
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized" and response.json()["status"] == 401
    assert mcp.headers["www-authenticate"].startswith("Bearer ")
    assert "resource_metadata=" in mcp.headers["www-authenticate"]


async def test_missing_scope_is_403_on_every_door(gateway: Gateway, stateless_gateway: Gateway,
                                                  data_dir: Path, runtime_env: dict[str, str]) -> None:
    key = mint_key(data_dir, user="narrow@example.test", scopes=["tasks:read"])
    for kind in ("rest", "shorthand", "mcp-http-session", "mcp-stdio"):
        async with open_door(kind, url=gateway.url, stateless_url=stateless_gateway.url, key=key,
                             data_dir=data_dir, env=runtime_env) as door:
            outcome = await door.call("api_keys_list")
            assert outcome.error_status == 403, (kind, outcome)
            assert outcome.body["error"] == "forbidden"


async def test_resource_metadata_is_served_at_the_root(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        meta = (await http.get("/.well-known/oauth-protected-resource/api/mcp")).json()
    assert meta["resource"] == f"{gateway.url}/api/mcp"


async def test_mcp_refuses_foreign_host_and_origin(gateway: Gateway, api_key: str) -> None:
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        ok = await http.post("/api/mcp", json=MCP_INIT, headers={**headers, "Origin": gateway.url})
        rebound = await http.post("/api/mcp", json=MCP_INIT, headers={**headers, "Host": "evil.example:80"})
        cross = await http.post("/api/mcp", json=MCP_INIT, headers={**headers, "Origin": "https://evil.example"})
    assert ok.status_code == 200
    assert rebound.status_code == 421
    assert cross.status_code == 403
