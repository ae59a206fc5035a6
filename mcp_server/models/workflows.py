"""Workflow wire models, as the spec shows them: a list item counts steps, a workflow lists them."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, TypeAdapter, ValidationError

from mcp_server.models.base import Wire
from mcp_server.models.sizes import SizeName
from mcp_server.models.validation import Command, DnsLabel, Duration, Env, Image, PageQuery

WorkflowStatus = Literal["pending", "running", "completed", "failed"]
StepStatus = Literal["pending", "running", "completed", "failed", "skipped"]

OUTPUT_REF = re.compile(r"\{\{\s*steps\.([A-Za-z0-9-]+)\.output\s*\}\}")
"""``{{steps.NAME.output}}``: replaced by that step's output when the referring step starts."""

IMAGE = TypeAdapter(Image)


def _image_template(value: str) -> str:
    # An image naming an output is checked with a stand-in now and for real when its step starts.
    try:
        IMAGE.validate_python(OUTPUT_REF.sub("output", value))
    except ValidationError:
        raise ValueError("must be a valid image reference such as myapp/migrator:latest") from None
    return value


ImageTemplate = Annotated[str, StringConstraints(max_length=255), AfterValidator(_image_template)]
StepRef = Annotated[str, StringConstraints(min_length=1, max_length=63)]


class StepCreate(Wire):
    name: DnsLabel = Field(description="A DNS-1123 label, unique in the workflow", examples=["build"])
    image: ImageTemplate = Field(description="Container image; may use {{steps.NAME.output}}", examples=["alpine:3"])
    command: Command = Field(description="The command and its arguments; may use {{steps.NAME.output}}")
    env: Env = Field(default_factory=dict, description="Environment variables (secret); values may use outputs")
    depends_on: list[StepRef] = Field(default_factory=list, max_length=100,
                                      description="Steps that must complete before this one starts")
    timeout: Duration | None = Field(default=None, description="How long it may run: 30s, 10m, 1h30m")
    size: SizeName = Field(default="small", description="small, medium or large")
    network: bool = Field(default=False, description="Allow network access (off by default)")


class WorkflowCreate(Wire):
    name: DnsLabel = Field(description="A DNS-1123 label", examples=["build-test-deploy"])
    steps: list[StepCreate] = Field(description="The steps; dependsOn makes them a DAG")


class Step(Wire):
    name: str
    status: StepStatus
    image: str | None = None
    command: list[str] | None = None
    env_keys: list[str] | None = Field(default=None, description="Names of the env vars given; values are secret")
    depends_on: list[str] | None = None
    timeout: str | None = None
    exit_code: int | None = None
    reason: str | None = Field(default=None, description="completed, error, timeout, cancelled, lost or skipped")
    message: str | None = None
    output: str | None = None
    logs: str | None = None
    started_at: str | None = None
    completed_at: str | None = None


class Workflow(Wire):
    id: str = Field(examples=["workflow_123"])
    name: str
    status: WorkflowStatus
    steps: list[Step] | None = None
    completed_steps: int | None = None
    created_at: str
    started_at: str | None = None
    completed_at: str | None = None


class WorkflowSummary(Wire):
    id: str
    name: str
    status: WorkflowStatus
    steps: int = Field(description="How many steps the workflow has")
    completed_steps: int
    created_at: str
    started_at: str | None = None
    completed_at: str | None = None


class WorkflowRef(Wire):
    workflow_id: str = Field(min_length=1, max_length=64, description="The workflow's id, e.g. workflow_123")


class WorkflowListQuery(PageQuery):
    status: WorkflowStatus | None = Field(default=None, description="Only workflows with this status")


class WorkflowWait(Wire):
    workflow_id: str = Field(min_length=1, max_length=64)
    timeout_seconds: float = Field(default=60.0, gt=0, le=600, description="Seconds to wait at most (up to 600)")


class WorkflowEnvelope(Wire):
    workflow: Workflow


class WorkflowList(Wire):
    workflows: list[WorkflowSummary]
    next_cursor: str | None = Field(default=None, description="Pass as cursor to get the next page")
