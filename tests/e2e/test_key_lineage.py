"""Key lineage through every door: a key made with a key never outlives it, dies with it, and a
narrow key can neither mint nor revoke a broader one. The CLI's keys are roots.

Key handling does not depend on the runtime, so these run on the local runtime only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.doors import Door, open_door
from tests.gateway import Gateway, mint_key

KeyedDoor = Callable[[str], AbstractAsyncContextManager[Door]]


@pytest.fixture
def local_only(runtime_env: dict[str, str]) -> None:
    if runtime_env["KUBEGATE_RUNTIME"] != "local":
        pytest.skip("key lineage does not depend on the runtime: tested on the local runtime")


@pytest.fixture
def as_key(door: Door, gateway: Gateway, stateless_gateway: Gateway, data_dir: Path,
           runtime_env: dict[str, str]) -> KeyedDoor:
    """Open the same kind of door as ``door``, but holding another key."""

    @asynccontextmanager
    async def opened(key: str) -> AsyncIterator[Door]:
        async with open_door(door.name, url=gateway.url, stateless_url=stateless_gateway.url, key=key,
                             data_dir=data_dir, env=runtime_env) as other:
            yield other

    return opened


async def _status(gateway: Gateway, key: str) -> int:
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        return (await http.get("/api/api-keys", headers={"Authorization": f"Bearer {key}"})).status_code


def _at(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


async def _own_key(door: Door) -> dict[str, str]:
    keys = (await door.call("api_keys_list")).body["apiKeys"]
    return next(k for k in keys if k["name"] == "test")  # the one the CLI minted for this door


@pytest.mark.usefixtures("local_only")
async def test_a_child_never_expires_after_its_parent_and_records_it(door: Door) -> None:
    parent = await _own_key(door)
    assert "parentId" not in parent, "the CLI's keys are roots"
    forever = await door.call("api_keys_create", {"name": "forever", "expiresInDays": None})
    assert forever.error_status == 400 and "expiresInDays" in forever.body["message"]
    long = await door.call("api_keys_create", {"name": "long", "expiresInDays": 3650})
    assert long.ok, long.body
    assert long.body["apiKey"]["expiresAt"] == parent["expiresAt"]
    assert long.body["apiKey"]["parentId"] == parent["id"]
    short = await door.call("api_keys_create", {"name": "short", "expiresInDays": 1})
    expected = datetime.now(UTC) + timedelta(days=1)
    assert abs((_at(short.body["apiKey"]["expiresAt"]) - expected).total_seconds()) < 120
    for days in (0, 3651):
        assert (await door.call("api_keys_create", {"name": "x", "expiresInDays": days})).error_status == 400


@pytest.mark.usefixtures("local_only")
async def test_revoking_a_key_revokes_every_key_made_with_it(door: Door, as_key: KeyedDoor,
                                                             gateway: Gateway) -> None:
    child = (await door.call("api_keys_create", {"name": "child", "expiresInDays": 5})).body["apiKey"]
    async with as_key(child["key"]) as child_door:
        grandchild = await child_door.call("api_keys_create", {"name": "grandchild", "expiresInDays": 30})
        assert grandchild.ok, grandchild.body
        assert grandchild.body["apiKey"]["parentId"] == child["id"]
        assert grandchild.body["apiKey"]["expiresAt"] == child["expiresAt"]
    sibling = (await door.call("api_keys_create", {"name": "sibling", "expiresInDays": 5})).body["apiKey"]
    assert await _status(gateway, grandchild.body["apiKey"]["key"]) == 200
    revoked = await door.call("api_keys_revoke", {"keyId": child["id"]})
    assert revoked.ok and revoked.body["apiKey"]["revokedAt"]
    assert await _status(gateway, child["key"]) == 401
    assert await _status(gateway, grandchild.body["apiKey"]["key"]) == 401
    assert await _status(gateway, sibling["key"]) == 200
    listed = [k["id"] for k in (await door.call("api_keys_list")).body["apiKeys"]]
    assert child["id"] not in listed and grandchild.body["apiKey"]["id"] not in listed


@pytest.mark.usefixtures("local_only")
async def test_a_narrow_key_can_neither_mint_nor_revoke_a_broader_one(door: Door, as_key: KeyedDoor,
                                                                      gateway: Gateway) -> None:
    broad = (await door.call("api_keys_create", {"name": "broad", "scopes": ["tasks:*", "api-keys:*"]})).body
    narrow = (await door.call("api_keys_create", {"name": "narrow", "scopes": ["api-keys:*"]})).body
    async with as_key(narrow["apiKey"]["key"]) as narrow_door:
        escalate = await narrow_door.call("api_keys_create", {"name": "up", "scopes": ["tasks:write"]})
        assert escalate.error_status == 403 and escalate.body["error"] == "forbidden"
        everything = await narrow_door.call("api_keys_create", {"name": "all"})  # default: every scope
        assert everything.error_status == 403
        refused = await narrow_door.call("api_keys_revoke", {"keyId": broad["apiKey"]["id"]})
        assert refused.error_status == 403 and "scopes" in refused.body["message"]
        same = await narrow_door.call("api_keys_create", {"name": "same", "scopes": ["api-keys:read"]})
        assert same.ok, same.body
        assert (await narrow_door.call("api_keys_revoke", {"keyId": same.body["apiKey"]["id"]})).ok
    assert await _status(gateway, broad["apiKey"]["key"]) == 200


@pytest.mark.usefixtures("local_only")
async def test_cli_keys_are_roots_even_for_a_user_with_keys(door: Door, data_dir: Path, user_email: str) -> None:
    assert mint_key(data_dir, user=user_email, name="second", days=3650).startswith("sk_live_")
    keys = {k["name"]: k for k in (await door.call("api_keys_list")).body["apiKeys"]}
    assert "parentId" not in keys["second"] and "parentId" not in keys["test"]
    assert _at(keys["second"]["expiresAt"]) > _at(keys["test"]["expiresAt"])  # not bound by the user's other key
