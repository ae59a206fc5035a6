"""Tasks: one-off containers (Kubernetes Jobs, or local processes) with status, exit code and logs."""

from __future__ import annotations

import json
import time
from typing import Any

from mcp_server.auth.principal import Principal
from mcp_server.context import Context
from mcp_server.engine.tasks import ACTIVE
from mcp_server.ids import iso
from mcp_server.models.tasks import Task, TaskCreate, TaskEnvelope, TaskList, TaskListQuery, TaskRef, TaskWait
from mcp_server.models.validation import format_duration
from mcp_server.registry import registry
from mcp_server.resources import resource
from mcp_server.services import Services


def task_model(row: dict[str, Any], *, logs: str | None = None, brief: bool = False) -> Task:
    task = Task(
        id=row["id"], name=row["name"], status=row["status"], image=row["image"], exit_code=row.get("exit_code"),
        reason=row.get("reason"), created_at=iso(row["created_at"]) or "", started_at=iso(row.get("started_at")),
        completed_at=iso(row.get("completed_at")),
    )
    if not brief:
        task.command = json.loads(row["command"])
        task.env_keys = json.loads(row["env_keys"])
        task.timeout = format_duration(row["timeout_seconds"])
        task.size = row["size"]
        task.network = bool(row["network"])
        task.output = row.get("output")
        task.logs = logs
    return task


@registry.capability(scope="tasks:read", title="List tasks", read_only=True, idempotent=True)
async def tasks_list(ctx: Context, args: TaskListQuery) -> TaskList:
    """List the caller's tasks, newest first. Filter by status; page with limit and nextCursor."""
    rows, cursor = await ctx.services.tasks.page(ctx.principal.user_id, args.status, args.limit, args.cursor)
    return TaskList(tasks=[task_model(r, brief=True) for r in rows], next_cursor=cursor)


@registry.capability(scope="tasks:write", title="Create a task")
async def tasks_create(ctx: Context, args: TaskCreate) -> TaskEnvelope:
    """Run a one-off container to completion (a Kubernetes Job; a local process on the embedded runtime).

    Answers at once with the task `pending`; follow it with tasks_get or tasks_wait. Env values are
    secret: they are never shown again, only their names.
    """
    row = await ctx.services.tasks.create(ctx.principal.user_id, args)
    return TaskEnvelope(task=task_model(row))


@registry.capability(scope="tasks:read", title="Get a task", read_only=True, idempotent=True)
async def tasks_get(ctx: Context, args: TaskRef) -> TaskEnvelope:
    """A task's status, exit code, timestamps and the tail of its logs."""
    row = await ctx.services.tasks.get(ctx.principal.user_id, args.task_id)
    return TaskEnvelope(task=task_model(row, logs=ctx.services.tasks.logs(row["id"])))


@registry.capability(scope="tasks:write", title="Delete a task", destructive=True, idempotent=True)
async def tasks_delete(ctx: Context, args: TaskRef) -> TaskEnvelope:
    """Stop the task if it is running, then delete it with its Job, logs and files."""
    row = await ctx.services.tasks.delete(ctx.principal.user_id, args.task_id)
    return TaskEnvelope(task=task_model(row))


@registry.capability(scope="tasks:read", title="Wait for a task", read_only=True, idempotent=True, mcp_only=True,
                     waits=True)
async def tasks_wait(ctx: Context, args: TaskWait) -> TaskEnvelope:
    """Wait until the task has finished (or `timeout` seconds pass) and return it.

    Sends progress notifications while waiting, and the task's new log lines as log messages.
    """
    service = ctx.services.tasks
    began = time.monotonic()
    sent = 0
    while True:
        row = await service.get(ctx.principal.user_id, args.task_id)
        logs = service.logs(row["id"])
        if len(logs) < sent:  # the tail window moved on: resend from its start
            sent = 0
        if len(logs) > sent:
            await ctx.log("info", logs[sent:])
            sent = len(logs)
        waited = time.monotonic() - began
        # Progress is the time waited so far; a task's remaining time is not knowable, so no total.
        await ctx.progress(waited, None, f"task {row['status']}")
        if row["status"] not in ACTIVE or waited >= args.timeout:
            return TaskEnvelope(task=task_model(row, logs=logs))
        await service.dispatcher.wait_change(row["id"], min(args.timeout - waited, 1.0))


@resource("task-logs", "kubegate://tasks/{taskId}/logs", scope="tasks:read",
          description="The logs (stdout and stderr) of one of your tasks")
async def task_logs(services: Services, principal: Principal, variables: dict[str, str]) -> str:
    row = await services.tasks.get(principal.user_id, variables["taskId"])
    return services.tasks.logs(row["id"])
