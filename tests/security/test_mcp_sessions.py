"""An MCP session over Streamable HTTP belongs to the credential's user that opened it."""

from __future__ import annotations

import httpx
import pytest

from tests.gateway import Gateway, mint_key
from tests.security.conftest import StartGateway

HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
           "MCP-Protocol-Version": "2025-11-25"}
INIT = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}


@pytest.fixture(scope="module")
def gateway(start_gateway: StartGateway) -> Gateway:
    return start_gateway()  # session mode, the default


async def test_another_users_key_cannot_use_a_session(gateway: Gateway) -> None:
    alice = mint_key(gateway.data_dir, user="alice-sessions@example.test")
    bob = mint_key(gateway.data_dir, user="bob-sessions@example.test")
    alice_second_key = mint_key(gateway.data_dir, user="alice-sessions@example.test")
    async with httpx.AsyncClient(base_url=gateway.url, headers=HEADERS) as http:
        opened = await http.post("/api/mcp", json=INIT, headers={"Authorization": f"Bearer {alice}"})
        assert opened.status_code == 200
        session = opened.headers["mcp-session-id"]
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        ack = await http.post("/api/mcp", json=initialized,
                              headers={"Authorization": f"Bearer {alice}", "Mcp-Session-Id": session})
        assert ack.status_code == 202

        stolen = await http.post("/api/mcp", json=LIST, headers={"Authorization": f"Bearer {bob}",
                                                                   "Mcp-Session-Id": session})
        assert stolen.status_code == 404  # as if the session did not exist
        assert "tools" not in stolen.text

        own = await http.post("/api/mcp", json=LIST, headers={"Authorization": f"Bearer {alice}",
                                                                "Mcp-Session-Id": session})
        assert own.status_code == 200 and "api_keys_list" in own.text
        # The session is bound to the user, not to one key string: the same user's other key may use it.
        other_key = await http.post("/api/mcp", json=LIST, headers={"Authorization": f"Bearer {alice_second_key}",
                                                                      "Mcp-Session-Id": session})
        assert other_key.status_code == 200


@pytest.fixture(scope="module")
def capped(start_gateway: StartGateway) -> Gateway:
    return start_gateway(max_mcp_sessions_per_user="2")


async def open_session(http: httpx.AsyncClient, key: str) -> httpx.Response:
    return await http.post("/api/mcp", json=INIT, headers={"Authorization": f"Bearer {key}"})


async def test_a_user_at_the_session_cap_loses_the_oldest_idle_session(capped: Gateway) -> None:
    carol = mint_key(capped.data_dir, user="carol-cap@example.test")
    dave = mint_key(capped.data_dir, user="dave-cap@example.test")
    async with httpx.AsyncClient(base_url=capped.url, headers=HEADERS) as http:
        first, second = [(await open_session(http, carol)).headers["mcp-session-id"] for _ in range(2)]
        daves = (await open_session(http, dave)).headers["mcp-session-id"]  # other users are not counted
        third = await open_session(http, carol)
        assert third.status_code == 200

        async def listing(session: str, key: str) -> int:
            answer = await http.post("/api/mcp", json=LIST, headers={"Authorization": f"Bearer {key}",
                                                                     "Mcp-Session-Id": session})
            return answer.status_code

        assert await listing(first, carol) == 404  # the oldest idle one was closed to make room
        assert await listing(second, carol) == 200
        assert await listing(third.headers["mcp-session-id"], carol) == 200
        assert await listing(daves, dave) == 200


async def test_a_user_whose_sessions_are_all_busy_is_refused(capped: Gateway) -> None:
    erin = mint_key(capped.data_dir, user="erin-cap@example.test")
    auth = {"Authorization": f"Bearer {erin}"}
    async with httpx.AsyncClient(base_url=capped.url, headers=HEADERS, timeout=30) as http:
        sessions = [(await open_session(http, erin)).headers["mcp-session-id"] for _ in range(2)]
        for session in sessions:
            ack = await http.post("/api/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                                  headers={**auth, "Mcp-Session-Id": session})
            assert ack.status_code == 202
        streams = [http.stream("GET", "/api/mcp", headers={**auth, "Mcp-Session-Id": s, "Accept": "text/event-stream"})
                   for s in sessions]
        opened = [await stream.__aenter__() for stream in streams]  # an open stream keeps a session busy
        try:
            assert all(response.status_code == 200 for response in opened)
            refused = await open_session(http, erin)
            assert refused.status_code == 429
            error = refused.json()
            assert error["jsonrpc"] == "2.0" and "Too many open MCP sessions" in error["error"]["message"]
        finally:
            for stream in streams:
                await stream.__aexit__(None, None, None)
