"""What the edge leaves in the ASGI scope, and the one way each door reads it back."""

from __future__ import annotations

import itertools
import re
import secrets
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from starlette.types import Scope

from mcp_server.auth.principal import PRINCIPAL_KEY, Principal
from mcp_server.errors import Unauthorized

REQUEST_ID_KEY = "kubegate.request_id"
REQUEST_ID_HEADER = b"x-request-id"
_SANE_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
# Generated ids: 64 random bits per process, then a counter (unique without a syscall per request).
_PROCESS = secrets.token_hex(8)
_COUNTER = itertools.count()


def principal_in(scope: Scope) -> Principal | None:
    """The principal the edge authenticated for this request, if any."""
    principal = scope.get(PRINCIPAL_KEY)
    return principal if isinstance(principal, Principal) else None


def require_principal(scope: Scope) -> Principal:
    principal = principal_in(scope)
    if principal is None:
        raise Unauthorized("Authentication required")
    return principal


def request_id_in(scope: Scope) -> str | None:
    value = scope.get(REQUEST_ID_KEY)
    return value if isinstance(value, str) else None


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def incoming_request_id(scope: Scope) -> str:
    """The caller's ``X-Request-Id`` when it is a sane token (it lands in logs), else a new one."""
    sent = header(scope, REQUEST_ID_HEADER)
    if sent is not None:
        text = sent.decode("latin-1")
        if _SANE_ID.fullmatch(text):
            return text
    return f"{_PROCESS}{next(_COUNTER):08x}"


Network = IPv4Network | IPv6Network


def parse_networks(spec: str) -> tuple[Network, ...]:
    """``KUBEGATE_TRUSTED_PROXIES``: comma-separated addresses or CIDR ranges."""
    return tuple(ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip())


def client_ip(scope: Scope, trusted: tuple[Network, ...]) -> str | None:
    """The peer address, or, when the peer is a trusted proxy, the nearest untrusted hop it names.

    ``X-Forwarded-For`` is read right to left, skipping trusted proxies; a header from an
    untrusted peer is ignored entirely, so a client cannot write its own address into the log.
    """
    client = scope.get("client")
    peer: str | None = str(client[0]) if client else None
    if peer is None or not trusted or not _within(peer, trusted):
        return peer
    forwarded = header(scope, b"x-forwarded-for")
    if forwarded is None:
        return peer
    for hop in reversed(forwarded.decode("latin-1").split(",")):
        hop = hop.strip()
        try:
            ip_address(hop)
        except ValueError:
            return peer  # a malformed chain is not trusted any further
        if not _within(hop, trusted):
            return hop
    return peer


def _within(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        parsed = ip_address(address)
    except ValueError:
        return False
    return any(parsed in net for net in networks)
