"""Per-user hourly rate limits on REST and MCP over HTTP, exact under concurrency."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.gateway import Gateway, mint_key
from tests.security.conftest import StartGateway

MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
MCP_INIT = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
_users = iter(range(1_000_000))


@pytest.fixture(scope="module")
def limited(start_gateway: StartGateway) -> Gateway:
    return start_gateway(rate_limit_api_key="20", rate_limit_session="4", dev_login="1")


def fresh_key(gw: Gateway, user: str | None = None) -> str:
    return mint_key(gw.data_dir, user=user or f"rl{next(_users)}@example.test")


def assert_limit_headers(response: httpx.Response, limit: int, remaining: int) -> None:
    assert response.headers["x-ratelimit-limit"] == str(limit)
    assert response.headers["x-ratelimit-remaining"] == str(remaining)
    reset = int(response.headers["x-ratelimit-reset"])
    assert time.time() <= reset <= time.time() + 3600 + 1


async def test_every_authenticated_response_carries_the_headers(limited: Gateway) -> None:
    key = fresh_key(limited)
    async with httpx.AsyncClient(base_url=limited.url, headers={"Authorization": f"Bearer {key}"}) as http:
        ok = await http.get("/api/api-keys")
        missing = await http.delete("/api/api-keys/key_nope")
        invalid = await http.post("/api/api-keys", json={"name": ""})
        anonymous = await http.get("/api/api-keys", headers={"Authorization": ""})
    assert ok.status_code == 200 and missing.status_code == 404 and invalid.status_code == 400
    assert_limit_headers(ok, 20, 19)
    assert_limit_headers(missing, 20, 18)
    assert_limit_headers(invalid, 20, 17)
    assert anonymous.status_code == 401 and "x-ratelimit-limit" not in anonymous.headers


async def test_exactly_the_limit_passes_among_parallel_requests(limited: Gateway) -> None:
    key = fresh_key(limited)
    pool = httpx.Limits(max_connections=60, max_keepalive_connections=60)
    async with httpx.AsyncClient(base_url=limited.url, headers={"Authorization": f"Bearer {key}"}, limits=pool,
                                 timeout=60) as http:
        responses = await asyncio.gather(*(http.get("/api/api-keys") for _ in range(60)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 20 and statuses.count(429) == 40
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json() == {"error": "rate_limit_exceeded", "message": refused.json()["message"], "status": 429}
    assert 1 <= int(refused.headers["retry-after"]) <= 3600
    assert_limit_headers(refused, 20, 0)


async def test_the_limit_is_per_user_not_per_key(limited: Gateway) -> None:
    user = f"rl{next(_users)}@example.test"
    first, second, other = fresh_key(limited, user), fresh_key(limited, user), fresh_key(limited)
    async with httpx.AsyncClient(base_url=limited.url) as http:
        for i in range(20):
            key = first if i % 2 else second
            assert (await http.get("/api/api-keys", headers={"Authorization": f"Bearer {key}"})).status_code == 200
        for key in (first, second):
            assert (await http.get("/api/api-keys", headers={"Authorization": f"Bearer {key}"})).status_code == 429
        assert (await http.get("/api/api-keys", headers={"Authorization": f"Bearer {other}"})).status_code == 200


async def test_mcp_over_http_is_limited_and_stream_responses_carry_the_headers(limited: Gateway) -> None:
    key = fresh_key(limited)
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=limited.url, headers=headers) as http:
        init = await http.post("/api/mcp", json=MCP_INIT)
        assert init.status_code == 200
        assert init.headers["content-type"].startswith("text/event-stream")
        assert_limit_headers(init, 20, 19)
        shorthand = await http.post("/api/mcp", json={"method": "api-keys/list", "params": {}})
        assert_limit_headers(shorthand, 20, 18)
        statuses = [(await http.post("/api/mcp", json=MCP_INIT)).status_code for _ in range(20)]
    assert statuses.count(200) == 18 and statuses[-2:] == [429, 429]


async def test_sessions_have_their_own_lower_limit(limited: Gateway) -> None:
    async with httpx.AsyncClient(base_url=limited.url) as http:
        login = await http.post("/auth/dev-login", json={"email": f"rl{next(_users)}@example.test"})
        assert login.status_code == 200
        answers = [await http.get("/api/api-keys") for _ in range(5)]
    assert [r.status_code for r in answers] == [200, 200, 200, 200, 429]
    assert_limit_headers(answers[0], 4, 3)
