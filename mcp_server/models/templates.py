"""Deployment template wire models (deployments-core.md), and the checks no single field can make.

Schemas are kept lean on purpose: agents read every tool's input schema on every turn, and a
field's default already shows its form (``100m``, ``128Mi``), so most fields carry no description.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, WithJsonSchema

from mcp_server.errors import ValidationFailed
from mcp_server.models.base import Wire
from mcp_server.models.validation import Command, DnsLabel, Image

_QUANTITY = re.compile(r"^(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?P<suffix>[KMGTPE]i|[mkMGTPE]|[eE][+-]?[0-9]+)?$")
_SUFFIX = {"": 0, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


def quantity_value(text: str) -> Decimal:
    """The amount a Kubernetes quantity such as ``100m``, ``1.5``, ``128Mi`` or ``1e3`` stands for."""
    match = _QUANTITY.match(text)
    if match is None:
        raise ValueError("must be a Kubernetes quantity such as 100m, 1, 128Mi or 1Gi")
    try:
        number = Decimal(match["number"])
    except InvalidOperation:
        raise ValueError("must be a Kubernetes quantity such as 100m, 1, 128Mi or 1Gi") from None
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * Decimal(2 ** _BINARY[suffix])
    if suffix[:1] in ("e", "E"):
        return number.scaleb(int(suffix[1:]))
    return number.scaleb(_SUFFIX[suffix])


def _quantity(value: str) -> str:
    if quantity_value(value) <= 0:
        raise ValueError("must be more than zero")
    return value


def _number_to_text(value: Any) -> Any:
    # YAML reads `cpuLimit: 1` or `value: 8080` as numbers; both mean the text.
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


Quantity = Annotated[str, BeforeValidator(_number_to_text), StringConstraints(max_length=32),
                     AfterValidator(_quantity), WithJsonSchema({"type": "string", "maxLength": 32})]
HealthPath = Annotated[str, StringConstraints(pattern=r"^/[\x21-\x7e]*$", max_length=1024),
                       WithJsonSchema({"type": "string", "pattern": "^/", "maxLength": 1024})]
Port = Annotated[int, Field(ge=1, le=65535)]
LeanImage = Annotated[Image, WithJsonSchema({"type": "string", "maxLength": 255})]
EnvName = Annotated[str, StringConstraints(pattern=_ENV_NAME, max_length=253)]


class EnvVarIn(Wire):
    name: EnvName
    value: Annotated[str, BeforeValidator(_number_to_text), StringConstraints(max_length=32768)] | None = Field(
        default=None, description="Omitted in an update: keep the current value")
    secret: bool = Field(default=False, description="Never shown back")


class EnvVarOut(Wire):
    name: str
    value: str | None = Field(default=None, description="Absent when secret")
    secret: bool


EnvVars = Annotated[list[EnvVarIn], Field(max_length=128)]


class TemplateFields(Wire):
    """A template's name and what an admin may set on it; ``None`` means "not given"."""

    name: DnsLabel
    display_name: Annotated[str, StringConstraints(max_length=100)] | None = Field(
        default=None, description="Default: the name")
    description: Annotated[str, StringConstraints(max_length=1000)] | None = None
    category: Annotated[str, StringConstraints(max_length=50)] | None = None
    image: LeanImage | None = None
    port: Port | None = Field(default=None, description="Default 8080")
    cpu_request: Quantity | None = Field(default=None, description="Default 100m")
    cpu_limit: Quantity | None = Field(default=None, description="Default 500m")
    memory_request: Quantity | None = Field(default=None, description="Default 128Mi")
    memory_limit: Quantity | None = Field(default=None, description="Default 512Mi")
    health_check_path: HealthPath | None = Field(default=None, description="Default /")
    enabled: bool | None = Field(default=None, description="Default true")
    env_vars: EnvVars | None = Field(default=None, description="Replaces the list in an update")
    command: Command | None = Field(default=None, description="Runs locally; overrides the entrypoint on Kubernetes")
    network: bool | None = Field(default=None, description="Outbound network; default false")


class TemplateCreate(TemplateFields):
    image: LeanImage  # required here, optional in an update


class TemplateUpdate(TemplateFields):
    """Only the fields given change."""


class TemplateRef(Wire):
    name: DnsLabel


class Template(Wire):
    name: str
    display_name: str
    description: str
    category: str
    image: str
    port: int
    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str
    health_check_path: str
    enabled: bool
    env_vars: list[EnvVarOut]
    command: list[str] | None = None
    network: bool = False
    version: int = Field(description="Grows by one with every change")
    source: str = Field(description="file: last set from KUBEGATE_TEMPLATES_FILE; api: by an admin")
    created_at: str
    updated_at: str


class TemplateList(Wire):
    templates: list[Template]


class TemplateEnvelope(Wire):
    template: Template


def check_limits(cpu_request: str, cpu_limit: str, memory_request: str, memory_limit: str) -> None:
    """Kubernetes refuses a request above its limit; say so before any deployment tries."""
    if quantity_value(cpu_request) > quantity_value(cpu_limit):
        raise ValidationFailed(f"{cpu_request} is more than cpuLimit {cpu_limit}", field="cpuRequest")
    if quantity_value(memory_request) > quantity_value(memory_limit):
        raise ValidationFailed(f"{memory_request} is more than memoryLimit {memory_limit}", field="memoryRequest")


def check_env_names(env_vars: list[EnvVarIn]) -> None:
    seen: set[str] = set()
    for index, var in enumerate(env_vars):
        if var.name.startswith("KUBEGATE_"):
            raise ValidationFailed("names starting with KUBEGATE_ are reserved", field=f"envVars.{index}.name")
        if var.name in seen:
            raise ValidationFailed(f"{var.name} appears twice", field=f"envVars.{index}.name")
        seen.add(var.name)
