"""Authorisation rules beyond a tool's scope: who is an administrator, what a key may mint or revoke.

Every rule is here, so a capability asks and never decides. A refusal is ``Forbidden`` (403)
or, for an argument that cannot be honoured, ``ValidationFailed`` naming the field.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mcp_server.auth.principal import Principal, covers
from mcp_server.errors import Forbidden, ValidationFailed


@dataclass(frozen=True, slots=True)
class Policy:
    operator_email: str
    admin_emails: frozenset[str]

    def is_admin(self, principal: Principal) -> bool:
        """The local operator, or a user listed in ``KUBEGATE_ADMIN_EMAILS``."""
        email = principal.email.lower()
        return principal.method == "local" or email == self.operator_email.lower() or email in self.admin_emails

    def require_admin(self, principal: Principal, what: str) -> None:
        if not self.is_admin(principal):
            raise Forbidden(f"Only administrators may {what}")


def require_scopes_held(principal: Principal, scopes: Iterable[str], action: str) -> None:
    """A key is only minted, or revoked, by a caller holding every scope it has (no escalation)."""
    if not covers(principal.scopes, scopes):
        raise Forbidden(f"A key cannot {action} a key with scopes that the caller does not hold")


def child_expiry(parent_expires_at: str | None, wanted: str | None) -> str | None:
    """When a key minted by a key expiring at ``parent_expires_at`` expires, given the ``wanted`` time.

    A child never outlives its parent: a later time is cut to the parent's, and a child of an
    expiring key must expire (``expiresInDays: null`` is refused). Times are stored stamps,
    which compare as strings.
    """
    if parent_expires_at is None:
        return wanted
    if wanted is None:
        raise ValidationFailed(
            f"this key expires at {parent_expires_at[:19]}Z, so a key it creates must expire too: give a number"
            " of days", field="expiresInDays")
    return min(wanted, parent_expires_at)
