"""Deployment wire models (deployments-core.md, plus image, scale, update, logs and metrics).

Input schemas are as lean as the tool budget asks: every tool reads one ``name`` (the same
schema), and field descriptions are left off where the name and type already say it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, WithJsonSchema

from mcp_server.models.base import Wire
from mcp_server.models.templates import EnvVarOut, LeanImage, Port
from mcp_server.models.validation import Command, Duration, Env
from mcp_server.models.validation import DnsLabel as _DnsLabel

DeploymentStatus = Literal["Pending", "Provisioning", "Ready", "Error", "Deleting"]
StatusFilter = Literal["Pending", "Provisioning", "Ready", "Error", "Deleting", "running"]
Visibility = Literal["public", "internal"]
Name = Annotated[_DnsLabel, WithJsonSchema({"type": "string"})]
_INT = WithJsonSchema({"type": "integer"})
"""Bounds are checked (and the error says them) but not spelled out in every schema."""
Replicas = Annotated[int, Field(ge=1, le=20), _INT]
LeanEnv = Annotated[Env, WithJsonSchema({"type": "object", "additionalProperties": {"type": "string"}})]
LeanCommand = Annotated[Command, WithJsonSchema({"type": "array", "items": {"type": "string"}})]


class DeploymentCreate(Wire):
    template: Name | None = None
    image: LeanImage | None = Field(default=None, description="Or a template")
    port: Annotated[Port, _INT] | None = None
    command: LeanCommand | None = Field(default=None, description="Runs locally")
    env_vars: LeanEnv = Field(default_factory=dict)
    replicas: Replicas = 1
    visibility: Visibility = "public"
    network: bool | None = Field(default=None, description="Outbound network; default: the template's, else false")


class DeploymentRef(Wire):
    name: Name


class DeploymentListQuery(Wire):
    """No paging: a user has at most KUBEGATE_MAX_DEPLOYMENTS_PER_USER (<= 500) deployments."""

    status: StatusFilter | None = None


class DeploymentScale(DeploymentRef):
    replicas: Replicas


class DeploymentUpdate(DeploymentRef):
    image: LeanImage | None = None
    env_vars: LeanEnv | None = Field(default=None, description="Merged")
    template_version: Annotated[int, Field(ge=1), _INT] | None = None
    network: bool | None = None


class DeploymentLogsQuery(DeploymentRef):
    tail: Annotated[int, Field(ge=1, le=10000), _INT] = 100
    since: Duration | None = None
    replica: Annotated[str, StringConstraints(max_length=63)] | None = None


class Ingress(Wire):
    id: str
    name: str
    host: str
    url: str


class ReplicaState(Wire):
    replica: str
    revision: int
    ready: bool
    restarts: int
    started_at: str | None = None
    last_error: str | None = None


class Deployment(Wire):
    name: str
    status: DeploymentStatus
    template: str | None = None
    template_version: int | None = None
    image: str
    visibility: Visibility
    replicas: int
    ready_replicas: int
    ingresses: list[Ingress]
    url: str
    last_error: str | None = None
    can_delete: bool
    created_at: str
    updated_at: str | None = None
    port: int | None = None
    health_check_path: str | None = None
    network: bool | None = None
    env_vars: list[EnvVarOut] | None = Field(default=None, description="Secret values are never shown")
    replica_status: list[ReplicaState] | None = None


class DeploymentList(Wire):
    deployments: list[Deployment]


class LogLineOut(Wire):
    at: str
    replica: str
    text: str


class DeploymentLogs(Wire):
    name: str
    lines: list[LogLineOut]


class ReplicaUsage(Wire):
    replica: str
    restarts: int
    cpu_seconds: float | None = None
    cpu_cores: float | None = None
    memory_bytes: int | None = None


class DeploymentMetrics(Wire):
    name: str
    available: bool
    reason: str | None = None
    restarts: int
    replicas: list[ReplicaUsage]
