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
    name: DnsLabel = Field(description="DNS label, unique in the workflow")
    image: ImageTemplate
    command: Command
    env: Env = Field(default_factory=dict)
    depends_on: list[StepRef] = Field(default_factory=list, max_length=100, description="Step names")
    timeout: Duration | None = Field(default=None, description="Run time limit, e.g. 10m")
    size: SizeName = "small"
    network: bool = False


class WorkflowCreate(Wire):
    name: DnsLabel
    steps: list[StepCreate]


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
    workflow_id: str = Field(min_length=1, max_length=64)


class WorkflowListQuery(PageQuery):
    status: WorkflowStatus | None = None


class WorkflowWait(Wire):
    workflow_id: str = Field(min_length=1, max_length=64)
    timeout_seconds: float = Field(default=60.0, gt=0, le=600, description="At most 600")


class WorkflowEnvelope(Wire):
    workflow: Workflow


class WorkflowList(Wire):
    workflows: list[WorkflowSummary]
    next_cursor: str | None = Field(default=None, description="Pass as cursor to get the next page")
