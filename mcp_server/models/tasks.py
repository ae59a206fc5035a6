"""Task wire models, as the spec shows them (plus the fields a production user needs)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mcp_server.models.base import Wire
from mcp_server.models.sizes import SizeName
from mcp_server.models.validation import Command, DnsLabel, Duration, Env, Image, PageQuery

TaskStatus = Literal["pending", "running", "completed", "failed"]


class TaskCreate(Wire):
    name: DnsLabel
    image: Image
    command: Command
    env: Env = Field(default_factory=dict)
    timeout: Duration | None = Field(default=None, description="Run time limit, e.g. 10m")
    size: SizeName = "small"
    network: bool = False


class Task(Wire):
    id: str = Field(examples=["task_123"])
    name: str
    status: TaskStatus
    image: str
    command: list[str] | None = None
    env_keys: list[str] | None = Field(default=None, description="Names of the env vars given; values are secret")
    timeout: str | None = None
    size: str | None = None
    network: bool | None = None
    exit_code: int | None = None
    reason: str | None = Field(
        default=None, description="completed, error, timeout, cancelled, lost, disk_limit or memory_limit")
    message: str | None = Field(default=None, description="Why it failed, when the exit code does not say")
    output: str | None = None
    logs: str | None = None
    created_at: str
    started_at: str | None = None
    completed_at: str | None = None


class TaskRef(Wire):
    task_id: str = Field(min_length=1, max_length=64)


class TaskListQuery(PageQuery):
    status: TaskStatus | None = None


class TaskWait(Wire):
    task_id: str = Field(min_length=1, max_length=64)
    timeout_seconds: float = Field(default=60.0, gt=0, le=600, description="At most 600")


class TaskEnvelope(Wire):
    task: Task


class TaskList(Wire):
    tasks: list[Task]
    next_cursor: str | None = Field(default=None, description="Pass as cursor to get the next page")
