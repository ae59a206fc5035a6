"""Field types shared by capabilities: DNS-1123 names, image references, Go durations, env."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints, WithJsonSchema

from mcp_server.models.base import Wire

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE = re.compile(
    rf"^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    rf"(?::[0-9]+)?)/)?{_COMPONENT}(?:/{_COMPONENT})*(?::[\w][\w.-]{{0,127}})?(?:@sha256:[a-f0-9]{{64}})?$"
)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration such as ``30s``, ``10m`` or ``1h30m``."""
    if not text or _DURATION_PART.sub("", text) != "":
        raise ValueError("must be a duration such as 30s, 10m or 1h30m")
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
    if seconds <= 0:
        raise ValueError("must be longer than zero")
    return seconds


def format_duration(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""]
    return "".join(parts) or "0s"


def _image(value: str) -> str:
    if len(value) > 255 or not _IMAGE.match(value):
        raise ValueError("must be a valid image reference such as myapp/migrator:latest")
    return value


def _duration(value: str) -> str:
    parse_duration(value)
    return value


def _env_names(env: dict[str, str]) -> dict[str, str]:
    bad = [k for k in env if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k) or len(k) > 253]
    if bad:
        raise ValueError(f"invalid variable name(s): {', '.join(sorted(bad)[:5])}")
    if any(k.startswith("KUBEGATE_") for k in env):
        raise ValueError("names starting with KUBEGATE_ are reserved")
    return env


def _dns_label(value: str) -> str:
    if not re.fullmatch(_DNS_LABEL, value):
        raise ValueError("must be a DNS-1123 label: 1-63 lowercase letters, digits or '-', starting and ending"
                         " with a letter or digit")
    return value


# The validators give messages a user can act on; the JSON Schemas say the same rule to clients.
DnsLabel = Annotated[str, AfterValidator(_dns_label),
                     WithJsonSchema({"type": "string", "pattern": _DNS_LABEL, "maxLength": 63})]
Image = Annotated[str, AfterValidator(_image),
                  WithJsonSchema({"type": "string", "pattern": _IMAGE.pattern, "maxLength": 255})]
Duration = Annotated[str, StringConstraints(max_length=32), AfterValidator(_duration),
                     WithJsonSchema({"type": "string", "pattern": r"^([1-9][0-9]*(ms|h|m|s))+$", "maxLength": 32})]
Command = Annotated[
    list[Annotated[str, StringConstraints(max_length=32768)]], Field(min_length=1, max_length=256)
]
Env = Annotated[dict[str, Annotated[str, StringConstraints(max_length=32768)]],
                Field(max_length=128), AfterValidator(_env_names),
                WithJsonSchema({"type": "object", "maxProperties": 128,
                                "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_]*$", "maxLength": 253},
                                "additionalProperties": {"type": "string", "maxLength": 32768}})]
Limit = Annotated[int, Field(ge=1, le=100)]
Cursor = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z:._-]{1,64}~[A-Za-z0-9_]{1,80}$")]
"""``nextCursor`` of a previous page (see ``store.pages``)."""


class PageQuery(Wire):
    """The paging arguments every list shares: newest first, ``limit`` at a time."""

    limit: Limit = Field(default=50, description="How many to return (1-100)")
    cursor: Cursor | None = Field(default=None, description="nextCursor of the previous page")
