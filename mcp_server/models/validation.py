"""Field types shared by capabilities: DNS-1123 names, image references, Go durations, env."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, WithJsonSchema

from mcp_server.models import durations
from mcp_server.models.base import Wire

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE = re.compile(
    rf"^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    rf"(?::[0-9]+)?)/)?{_COMPONENT}(?:/{_COMPONENT})*(?::[\w][\w.-]{{0,127}})?(?:@sha256:[a-f0-9]{{64}})?$"
)


def _image(value: str) -> str:
    if len(value) > 255 or not _IMAGE.fullmatch(value):  # fullmatch: "$" would let a trailing newline in
        raise ValueError("must be a valid image reference such as myapp/migrator:latest")
    return value


def _duration(value: object) -> int:
    if not isinstance(value, str):
        raise ValueError(f"must be a string: {durations.HINT}")
    return durations.parse(value)


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL bytes")
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
                     WithJsonSchema({"type": "string", "pattern": _DNS_LABEL, "maxLength": 63,
                                     "description": "DNS label: a-z, 0-9, -"})]
Image = Annotated[str, AfterValidator(_image),
                  WithJsonSchema({"type": "string", "pattern": _IMAGE.pattern, "maxLength": 255})]
Duration = Annotated[int, BeforeValidator(_duration),
                     WithJsonSchema({"type": "string", "pattern": durations.PATTERN,
                                     "maxLength": durations.MAX_LENGTH, "description": "e.g. 90s, 1h30m"})]
"""Given as a string (``1h30m``), held as whole seconds: parsed once, where it enters."""
_NO_NUL = "^[^\\u0000]*$"
_Text = Annotated[str, StringConstraints(max_length=32768), AfterValidator(_no_nul),
                  WithJsonSchema({"type": "string", "maxLength": 32768, "pattern": _NO_NUL})]
Command = Annotated[list[_Text], Field(min_length=1, max_length=256)]
Env = Annotated[dict[str, _Text],
                Field(max_length=128), AfterValidator(_env_names),
                WithJsonSchema({"type": "object", "maxProperties": 128,
                                "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_]*$", "maxLength": 253},
                                "additionalProperties": {"type": "string", "maxLength": 32768, "pattern": _NO_NUL}})]
Limit = Annotated[int, Field(ge=1, le=100)]
Cursor = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z:._-]{1,64}~[A-Za-z0-9_]{1,80}$")]
"""``nextCursor`` of a previous page (see ``store.pages``)."""


class PageQuery(Wire):
    """The paging arguments every list shares: newest first, ``limit`` at a time."""

    limit: Limit = 50
    cursor: Cursor | None = Field(default=None, description="nextCursor of the previous page")
