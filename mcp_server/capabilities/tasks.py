"""Tasks: one-off containers (Kubernetes Jobs, or local processes) with status, exit code and logs."""

from __future__ import annotations

import time

from mcp_server.context import Context
from mcp_server.ids import iso
from mcp_server.models import durations
from mcp_server.models.tasks import Task, TaskCreate, TaskEnvelope, TaskList, TaskListQuery, TaskRef, TaskWait
from mcp_server.registry import registry
from mcp_server.resources import resource
from mcp_server.store.runs import ACTIVE
from mcp_server.store.tasks import TaskRecord


def task_model(record: TaskRecord, *, logs: str | None = None, brief: bool = False) -> Task:
    task = Task(
        id=record.id, name=record.name, status=record.status, image=record.image, exit_code=record.exit_code,
        reason=record.reason, message=record.message, created_at=iso(record.created_at) or "",
        started_at=iso(record.started_at), completed_at=iso(record.completed_at),
    )
    if not brief:
        task.command = list(record.command)
        task.env_keys = list(record.env_keys)
        task.timeout = durations.shown(record.timeout_seconds)
        task.size = record.size
        task.network = record.network
        task.output = record.output
        task.logs = logs
    return task


@registry.capability(scope="tasks:read", title="List tasks", read_only=True, idempotent=True)
async def tasks_list(ctx: Context, args: TaskListQuery) -> TaskList:
    """List your tasks, newest first; page with limit and nextCursor."""
    records, cursor = await ctx.tasks.page(ctx.principal.user_id, args.status, args.limit, args.cursor)
    return TaskList(tasks=[task_model(r, brief=True) for r in records], next_cursor=cursor)


@registry.capability(scope="tasks:write", title="Create a task")
async def tasks_create(ctx: Context, args: TaskCreate) -> TaskEnvelope:
    """Run a one-off container to completion (a Kubernetes Job, or a local process).

    Answers at once (`pending`, or `failed` with a message); follow with tasks_wait. Env values are never shown again.
    """
    return TaskEnvelope(task=task_model(await ctx.tasks.create(ctx.principal.user_id, args)))


@registry.capability(scope="tasks:read", title="Get a task", read_only=True, idempotent=True)
async def tasks_get(ctx: Context, args: TaskRef) -> TaskEnvelope:
    """A task's status, exit code, timestamps and the tail of its logs."""
    record = await ctx.tasks.get(ctx.principal.user_id, args.task_id)
    return TaskEnvelope(task=task_model(record, logs=ctx.tasks.logs(record.id)))


@registry.capability(scope="tasks:write", title="Delete a task", destructive=True, idempotent=True)
async def tasks_delete(ctx: Context, args: TaskRef) -> TaskEnvelope:
    """Stop the task if it is running, then delete it with its Job, logs and files."""
    task = await ctx.tasks.delete(ctx.principal.user_id, args.task_id)
    ctx.tasks.dispatcher.feed.publish(task.id, removed_for=ctx.principal.user_id)
    return TaskEnvelope(task=task_model(task))


@registry.capability(scope="tasks:read", title="Wait for a task", read_only=True, idempotent=True, mcp_only=True,
                     waits=True)
async def tasks_wait(ctx: Context, args: TaskWait) -> TaskEnvelope:
    """Wait until the task ends (or timeoutSeconds pass) and return it; reports progress and new log lines."""
    service = ctx.tasks
    began = time.monotonic()
    sent = 0
    while True:
        record = await service.get(ctx.principal.user_id, args.task_id)
        logs = service.logs(record.id)
        if len(logs) < sent:  # the tail window moved on: resend from its start
            sent = 0
        if len(logs) > sent:
            await ctx.log("info", logs[sent:])
            sent = len(logs)
        waited = time.monotonic() - began
        # Progress is the time waited so far; a task's remaining time is not knowable, so no total.
        await ctx.progress(waited, None, f"task {record.status}")
        if record.status not in ACTIVE or waited >= args.timeout_seconds:
            return TaskEnvelope(task=task_model(record, logs=logs))
        await service.dispatcher.wait_change(record.id, min(args.timeout_seconds - waited, 1.0))


@resource("task-logs", "kubegate://tasks/{taskId}/logs", scope="tasks:read",
          description="The logs (stdout and stderr) of one of your tasks")
async def task_logs(ctx: Context, variables: dict[str, str]) -> str:
    record = await ctx.tasks.get(ctx.principal.user_id, variables["taskId"])
    return ctx.tasks.logs(record.id)
