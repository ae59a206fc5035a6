"""Every failure on REST has the documented shape, and none leaks a traceback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.gateway import Gateway


@pytest.fixture
async def http(gateway: Gateway, api_key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=gateway.url, headers={"Authorization": f"Bearer {api_key}"})


def _shaped(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message", "status"}
    assert body["status"] == status and body["error"] == code
    assert "Traceback" not in response.text


async def test_unknown_route_is_404(http: httpx.AsyncClient) -> None:
    _shaped(await http.get("/api/nothing-here"), 404, "resource_not_found")
    _shaped(await http.get("/nothing-here"), 404, "resource_not_found")


async def test_wrong_method_is_405(http: httpx.AsyncClient) -> None:
    _shaped(await http.patch("/api/api-keys"), 405, "method_not_allowed")


async def test_malformed_json_is_400(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/api-keys", content=b'{"name": ', headers={"Content-Type": "application/json"})
    _shaped(response, 400, "bad_request")
    _shaped(await http.post("/api/api-keys", json=[1, 2]), 400, "bad_request")


async def test_validation_error_names_the_field(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/api-keys", json={"name": ""})
    _shaped(response, 400, "validation_error")
    assert "name" in response.json()["message"]


async def test_body_over_one_mebibyte_is_413(http: httpx.AsyncClient) -> None:
    big = b'{"name": "' + b"a" * (1024 * 1024 + 10) + b'"}'
    _shaped(await http.post("/api/api-keys", content=big), 413, "payload_too_large")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit is enforced while streaming
        for _ in range(20):
            yield b"a" * 65536

    _shaped(await http.post("/api/api-keys", content=chunks()), 413, "payload_too_large")


async def test_revoking_an_unknown_key_is_404(http: httpx.AsyncClient) -> None:
    _shaped(await http.delete("/api/api-keys/key_doesnotexist"), 404, "resource_not_found")
