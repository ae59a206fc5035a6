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
