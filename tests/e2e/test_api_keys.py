"""The API-key scenario through every door, each a real process or connection."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.doors import Door
from tests.gateway import Gateway, mint_key


async def test_create_list_revoke_through_each_door(door: Door, gateway: Gateway) -> None:
    created = await door.call("api_keys_create", {"name": "CI/CD Pipeline", "expiresInDays": 30})
    assert created.ok, created.body
    key = created.body["apiKey"]
    assert key["key"].startswith("sk_live_") and len(key["key"]) >= len("sk_live_") + 43
    assert key["name"] == "CI/CD Pipeline" and key["id"].startswith("key_")
    assert key["createdAt"].endswith("Z")

    listed = await door.call("api_keys_list")
    assert listed.ok
    ids = [k["id"] for k in listed.body["apiKeys"]]
    assert key["id"] in ids
    assert all("key" not in k for k in listed.body["apiKeys"]), "the secret is shown only once"

    async with httpx.AsyncClient(base_url=gateway.url) as http:
        fresh = {"Authorization": f"Bearer {key['key']}"}
        assert (await http.get("/api/api-keys", headers=fresh)).status_code == 200

        revoked = await door.call("api_keys_revoke", {"keyId": key["id"]})
        assert revoked.ok and revoked.body["apiKey"]["revokedAt"]

        refused = await http.get("/api/api-keys", headers=fresh)
        assert refused.status_code == 401
        assert refused.json() == {"error": "unauthorized", "message": refused.json()["message"], "status": 401}

    listed = await door.call("api_keys_list")
    assert key["id"] not in [k["id"] for k in listed.body["apiKeys"]]


async def test_validation_error_names_the_field(door: Door) -> None:
    outcome = await door.call("api_keys_create", {"name": "x", "expiresInDays": 0})
    assert outcome.error_status == 400
    assert outcome.body["error"] == "validation_error" and "expiresInDays" in outcome.body["message"]

    unknown = await door.call("api_keys_create", {"name": "x", "color": "blue"})
    assert unknown.error_status == 400 and "color" in unknown.body["message"]


async def test_another_users_key_is_not_found(door: Door, gateway: Gateway, data_dir: Path) -> None:
    other = mint_key(data_dir, user="someone-else@example.test")
    async with httpx.AsyncClient(base_url=gateway.url, headers={"Authorization": f"Bearer {other}"}) as http:
        theirs = (await http.get("/api/api-keys")).json()["apiKeys"]
    theirs_id = theirs[0]["id"]
    mine = await door.call("api_keys_list")
    assert theirs_id not in [k["id"] for k in mine.body["apiKeys"]]
    outcome = await door.call("api_keys_revoke", {"keyId": theirs_id})
    assert outcome.error_status == 404 and outcome.body["error"] == "resource_not_found"


async def test_scopes_are_limited_to_the_callers(door: Door) -> None:
    outcome = await door.call("api_keys_create", {"name": "narrow", "scopes": ["tasks:read"]})
    assert outcome.ok and outcome.body["apiKey"]["scopes"] == ["tasks:read"]
    bad = await door.call("api_keys_create", {"name": "bad", "scopes": ["nonsense:read"]})
    assert bad.error_status == 400 and "scopes" in bad.body["message"]
