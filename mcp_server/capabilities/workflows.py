"""Workflows: a DAG of steps (containers, or local processes) with output passing between them."""

from __future__ import annotations

import json
import time
from typing import Any

from mcp_server.auth.principal import Principal
from mcp_server.context import Context
from mcp_server.engine.workflows import ACTIVE, WorkflowService
from mcp_server.errors import NotFound
from mcp_server.ids import iso
from mcp_server.models.validation import format_duration
from mcp_server.models.workflows import (
    Step,
    Workflow,
    WorkflowCreate,
    WorkflowEnvelope,
    WorkflowList,
    WorkflowListQuery,
    WorkflowRef,
    WorkflowSummary,
    WorkflowWait,
)
from mcp_server.registry import registry
from mcp_server.resources import resource
from mcp_server.services import Services

_MIN_STEP_TAIL = 4096


def step_model(row: dict[str, Any], logs: str | None = None) -> Step:
    return Step(
        name=row["name"], status=row["status"], image=row["image"], command=json.loads(row["command"]),
        env_keys=json.loads(row["env_keys"]), depends_on=json.loads(row["depends_on"]),
        timeout=format_duration(row["timeout_seconds"]), exit_code=row.get("exit_code"), reason=row.get("reason"),
        message=row.get("message"), output=row.get("output"), logs=logs, started_at=iso(row.get("started_at")),
        completed_at=iso(row.get("completed_at")),
    )


def workflow_model(row: dict[str, Any], steps: list[Step]) -> Workflow:
    return Workflow(
        id=row["id"], name=row["name"], status=row["status"], steps=steps,
        completed_steps=sum(s.status == "completed" for s in steps), created_at=iso(row["created_at"]) or "",
        started_at=iso(row.get("started_at")), completed_at=iso(row.get("completed_at")),
    )


async def _full(service: WorkflowService, row: dict[str, Any]) -> Workflow:
    """The workflow with every step and the tail of its logs (shared out so 100 steps stay readable)."""
    steps = await service.steps(row["id"])
    tail = max(_MIN_STEP_TAIL, service.settings.log_tail_bytes // max(1, len(steps)))
    return workflow_model(row, [step_model(s, service.logs(s, tail) if s["started_at"] else None) for s in steps])


@registry.capability(scope="workflows:read", title="List workflows", read_only=True, idempotent=True)
async def workflows_list(ctx: Context, args: WorkflowListQuery) -> WorkflowList:
    """List the caller's workflows, newest first, with step counts. Filter by status; page with limit and nextCursor."""
    rows, cursor = await ctx.services.workflows.page(ctx.principal.user_id, args.status, args.limit, args.cursor)
    summaries = [
        WorkflowSummary(id=r["id"], name=r["name"], status=r["status"], steps=r["step_count"],
                        completed_steps=r["completed_steps"], created_at=iso(r["created_at"]) or "",
                        started_at=iso(r.get("started_at")), completed_at=iso(r.get("completed_at")))
        for r in rows
    ]
    return WorkflowList(workflows=summaries, next_cursor=cursor)


@registry.capability(scope="workflows:write", title="Create a workflow")
async def workflows_create(ctx: Context, args: WorkflowCreate) -> WorkflowEnvelope:
    """Run a DAG of steps: each starts as soon as every step in its dependsOn has completed.

    A step's output (the file $KUBEGATE_OUTPUT, else its last line of stdout; 4 KiB at most) is
    available to the steps after it as {{steps.NAME.output}} in command, env values or image. When a
    step fails its dependants are skipped and the workflow fails. Answers at once with the workflow
    `pending`; follow it with workflows_get or workflows_wait. Env values are secret.
    """
    row, steps = await ctx.services.workflows.create(ctx.principal.user_id, args)
    return WorkflowEnvelope(workflow=workflow_model(row, [step_model(s) for s in steps]))


@registry.capability(scope="workflows:read", title="Get a workflow", read_only=True, idempotent=True)
async def workflows_get(ctx: Context, args: WorkflowRef) -> WorkflowEnvelope:
    """A workflow's status and, for each step, its status, exit code, output and the tail of its logs."""
    service = ctx.services.workflows
    row = await service.get(ctx.principal.user_id, args.workflow_id)
    return WorkflowEnvelope(workflow=await _full(service, row))


@registry.capability(scope="workflows:write", title="Delete a workflow", destructive=True, idempotent=True)
async def workflows_delete(ctx: Context, args: WorkflowRef) -> WorkflowEnvelope:
    """Stop the workflow's running steps, then delete it with its runs, logs and files."""
    row, steps = await ctx.services.workflows.delete(ctx.principal.user_id, args.workflow_id)
    return WorkflowEnvelope(workflow=workflow_model(row, [step_model(s) for s in steps]))


@registry.capability(scope="workflows:read", title="Wait for a workflow", read_only=True, idempotent=True,
                     mcp_only=True, waits=True)
async def workflows_wait(ctx: Context, args: WorkflowWait) -> WorkflowEnvelope:
    """Wait until the workflow has finished (or `timeout` seconds pass) and return it.

    Sends progress notifications (completed steps out of all steps) while waiting, and a log
    message each time a step ends.
    """
    service = ctx.services.workflows
    deadline = time.monotonic() + args.timeout
    reported: set[str] = set()
    sent = -1  # MCP progress must increase from one notification to the next
    while True:
        row = await service.get(ctx.principal.user_id, args.workflow_id)
        steps = await service.steps(row["id"])
        for step in steps:
            if step["status"] not in ACTIVE and step["name"] not in reported:
                reported.add(step["name"])
                await ctx.log("info", f"step {step['name']} {step['status']}")
        done = sum(s["status"] == "completed" for s in steps)
        if done > sent:
            await ctx.progress(done, len(steps), f"{done}/{len(steps)} steps completed; workflow {row['status']}")
            sent = done
        remaining = deadline - time.monotonic()
        if row["status"] not in ACTIVE or remaining <= 0:
            return WorkflowEnvelope(workflow=await _full(service, row))
        await service.dispatcher.wait_change(row["id"], min(remaining, 1.0))


@resource("workflow-step-logs", "kubegate://workflows/{workflowId}/steps/{step}/logs", scope="workflows:read",
          description="The logs (stdout and stderr) of one step of one of your workflows")
async def workflow_step_logs(services: Services, principal: Principal, variables: dict[str, str]) -> str:
    row = await services.workflows.get(principal.user_id, variables["workflowId"])
    step = next((s for s in await services.workflows.steps(row["id"]) if s["name"] == variables["step"]), None)
    if step is None:
        raise NotFound("Step not found")
    return services.workflows.logs(step)
