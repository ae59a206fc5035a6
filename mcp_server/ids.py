"""Identifiers and timestamps: unguessable prefixed ids, ISO-8601 UTC with ``Z``."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62(data: bytes) -> str:
    """Encode ``data`` in base62, keeping its full entropy (leading zero bytes included)."""
    number = int.from_bytes(data, "big")
    out = []
    while number:
        number, digit = divmod(number, 62)
        out.append(_ALPHABET[digit])
    width = -(-len(data) * 8 * 1000 // 5954)  # ceil(bits / log2(62))
    return "".join(reversed(out)).rjust(width, "0")


def new_id(prefix: str, nbytes: int = 12) -> str:
    """``<prefix>_<base62>``: 96 random bits by default, so ids cannot be guessed or enumerated."""
    return f"{prefix}_{base62(secrets.token_bytes(nbytes))}"


def utcnow() -> datetime:
    return datetime.now(UTC)


def stamp(moment: datetime | None = None) -> str:
    """Storage form: microsecond precision so that ordering by it is stable."""
    return (moment or utcnow()).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso(value: str | None) -> str | None:
    """Wire form of a stored stamp: ``2024-01-20T10:00:00Z``."""
    return None if value is None else value[:19] + "Z"


def parse(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
