"""The API key repository: typed records, lineage, and revocation of a whole subtree."""

from __future__ import annotations

import pytest

from mcp_server.auth.keys import KeyStore
from mcp_server.store.api_keys import ApiKeyRecord
from mcp_server.store.stores import Stores


async def test_records_are_frozen_and_decode_their_json_columns(stores: Stores) -> None:
    user = await stores.users.ensure("Keys@Example.test")
    assert user.email == "keys@example.test"
    new = await KeyStore(stores.api_keys).create(user.id, "ci", ["tasks:read", "tasks:write"], 30)
    listed = await stores.api_keys.live(user.id)
    assert listed == [new.key] and isinstance(listed[0], ApiKeyRecord)
    assert listed[0].scopes == ("tasks:read", "tasks:write") and listed[0].parent_id is None
    with pytest.raises(AttributeError):
        listed[0].name = "renamed"  # type: ignore[misc]


async def test_revoking_a_key_revokes_its_descendants_only(stores: Stores) -> None:
    keys = KeyStore(stores.api_keys)
    user = (await stores.users.ensure("tree@example.test")).id
    root = (await keys.create(user, "root", ["*"], 90)).key
    child = (await keys.create(user, "child", ["*"], 90, parent=root)).key
    grandchild = (await keys.create(user, "grandchild", ["*"], 90, parent=child)).key
    other = (await keys.create(user, "other", ["*"], 90, parent=root)).key
    assert child.expires_at is not None and root.expires_at is not None and child.expires_at <= root.expires_at
    assert (await keys.revoke(user, child.id)) is not None
    live = {k.id for k in await keys.list(user)}
    assert live == {root.id, other.id} and grandchild.id not in live
    assert await keys.revoke(user, child.id) is None  # already revoked: nothing to revoke
    assert await keys.revoke("user_someone_else", root.id) is None  # never another user's


async def test_authentication_refuses_a_revoked_descendant(stores: Stores) -> None:
    keys = KeyStore(stores.api_keys)
    user = (await stores.users.ensure("auth@example.test")).id
    root = await keys.create(user, "root", ["*"], None)
    child = await keys.create(user, "child", ["tasks:read"], 5, parent=root.key)
    principal = await keys.authenticate(child.secret)
    assert principal is not None and principal.scopes == ("tasks:read",) and principal.key_id == child.key.id
    await keys.revoke(user, root.key.id)
    assert await keys.authenticate(child.secret) is None and await keys.authenticate(root.secret) is None


async def test_a_listed_key_shows_its_row_as_it_is_now(stores: Stores) -> None:
    """Listing decodes an unchanged row once; a row that changed (used, revoked) is read afresh."""
    keys = KeyStore(stores.api_keys)
    user = (await stores.users.ensure("listing@example.test")).id
    first = (await keys.create(user, "first", ["tasks:read"], None)).key
    second = (await keys.create(user, "second", ["tasks:read"], None)).key
    assert [k.last_used_at for k in await stores.api_keys.live(user)] == [None, None]
    await stores.api_keys.touch(first.id, "2030-01-02T03:04:05.000000Z")
    listed = {k.id: k for k in await stores.api_keys.live(user)}
    assert listed[first.id].last_used_at == "2030-01-02T03:04:05.000000Z" and listed[second.id].last_used_at is None
    await keys.revoke(user, second.id)
    assert [k.id for k in await stores.api_keys.live(user)] == [first.id]
