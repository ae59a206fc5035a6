"""Authorisation rules: administrators, scope escalation, and how long a child key may live."""

from __future__ import annotations

import pytest

from mcp_server.auth.policy import Policy, child_expiry, require_scopes_held
from mcp_server.auth.principal import Principal
from mcp_server.errors import Forbidden, ValidationFailed


def who(email: str, method: str = "api_key", scopes: tuple[str, ...] = ("*",)) -> Principal:
    return Principal(user_id="user_1", email=email, method=method, scopes=scopes)  # type: ignore[arg-type]


def test_admins_are_the_operator_and_the_listed_emails() -> None:
    policy = Policy(operator_email="op@localhost", admin_emails=frozenset({"boss@example.test"}))
    assert policy.is_admin(who("anyone@example.test", method="local"))
    assert policy.is_admin(who("OP@localhost")) and policy.is_admin(who("Boss@Example.test"))
    assert not policy.is_admin(who("intern@example.test"))
    with pytest.raises(Forbidden, match="Only administrators may read the audit log"):
        policy.require_admin(who("intern@example.test"), "read the audit log")


def test_a_caller_cannot_hand_out_or_revoke_scopes_it_lacks() -> None:
    narrow = who("n@example.test", scopes=("api-keys:*", "tasks:read"))
    require_scopes_held(narrow, ["api-keys:read", "tasks:read"], "create")
    for wanted in (["tasks:write"], ["tasks:*"], ["*"]):
        with pytest.raises(Forbidden):
            require_scopes_held(narrow, wanted, "revoke")


def test_a_child_key_never_outlives_its_parent() -> None:
    parent = "2030-01-01T00:00:00.000000Z"
    assert child_expiry(None, None) is None
    assert child_expiry(None, "2099-01-01T00:00:00.000000Z") == "2099-01-01T00:00:00.000000Z"
    assert child_expiry(parent, "2029-06-01T00:00:00.000000Z") == "2029-06-01T00:00:00.000000Z"
    assert child_expiry(parent, "2099-01-01T00:00:00.000000Z") == parent
    with pytest.raises(ValidationFailed, match="expiresInDays"):
        child_expiry(parent, None)
