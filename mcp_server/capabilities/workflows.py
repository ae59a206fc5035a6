"""Workflows: a DAG of steps (containers, or local processes) with output passing between them."""

from __future__ import annotations

import time

from mcp_server.context import Context
from mcp_server.engine.workflows import WorkflowService
from mcp_server.errors import NotFound
from mcp_server.ids import iso
from mcp_server.models import durations
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
from mcp_server.store.runs import ACTIVE
from mcp_server.store.workflows import StepRecord, WorkflowRecord

_MIN_STEP_TAIL = 4096


def step_model(step: StepRecord, logs: str | None = None) -> Step:
    return Step(
        name=step.name, status=step.status, image=step.image, command=list(step.command),
        env_keys=list(step.env_keys), depends_on=list(step.depends_on), timeout=durations.shown(step.timeout_seconds),
        exit_code=step.exit_code, reason=step.reason, message=step.message, output=step.output, logs=logs,
        started_at=iso(step.started_at), completed_at=iso(step.completed_at),
    )


def workflow_model(workflow: WorkflowRecord, steps: list[Step]) -> Workflow:
    return Workflow(
        id=workflow.id, name=workflow.name, status=workflow.status, steps=steps,
        completed_steps=sum(s.status == "completed" for s in steps), created_at=iso(workflow.created_at) or "",
        started_at=iso(workflow.started_at), completed_at=iso(workflow.completed_at),
    )


async def _full(service: WorkflowService, workflow: WorkflowRecord) -> Workflow:
    """The workflow with every step and the tail of its logs (shared out so 100 steps stay readable)."""
    steps = await service.steps(workflow.id)
    tail = max(_MIN_STEP_TAIL, service.settings.log_tail_bytes // max(1, len(steps)))
    return workflow_model(workflow, [step_model(s, service.logs(s, tail) if s.started_at else None) for s in steps])


@registry.capability(scope="workflows:read", title="List workflows", read_only=True, idempotent=True)
async def workflows_list(ctx: Context, args: WorkflowListQuery) -> WorkflowList:
    """List your workflows with step counts, newest first; page with limit and nextCursor."""
    page, cursor = await ctx.workflows.page(ctx.principal.user_id, args.status, args.limit, args.cursor)
    summaries = [
        WorkflowSummary(id=w.id, name=w.name, status=w.status, steps=w.step_count, completed_steps=done,
                        created_at=iso(w.created_at) or "", started_at=iso(w.started_at),
                        completed_at=iso(w.completed_at))
        for w, done in page
    ]
    return WorkflowList(workflows=summaries, next_cursor=cursor)


@registry.capability(scope="workflows:write", title="Create a workflow")
async def workflows_create(ctx: Context, args: WorkflowCreate) -> WorkflowEnvelope:
    """Run a DAG of steps; a step starts when all its dependsOn steps completed.

    A step's output (file $KUBEGATE_OUTPUT, else its last stdout line; max 4 KiB) reaches later
    steps as env $KUBEGATE_OUTPUT_<NAME> (upper case, - as _) and as {{steps.NAME.output}} in
    command, env or image. A failed step skips its dependants and fails the workflow. Answers at
    once (`pending`); follow with workflows_wait. Env values are secret.
    """
    workflow, steps = await ctx.workflows.create(ctx.principal.user_id, args)
    return WorkflowEnvelope(workflow=workflow_model(workflow, [step_model(s) for s in steps]))


@registry.capability(scope="workflows:read", title="Get a workflow", read_only=True, idempotent=True)
async def workflows_get(ctx: Context, args: WorkflowRef) -> WorkflowEnvelope:
    """A workflow and each step's status, exit code, output and log tail."""
    workflow = await ctx.workflows.get(ctx.principal.user_id, args.workflow_id)
    return WorkflowEnvelope(workflow=await _full(ctx.workflows, workflow))


@registry.capability(scope="workflows:write", title="Delete a workflow", destructive=True, idempotent=True)
async def workflows_delete(ctx: Context, args: WorkflowRef) -> WorkflowEnvelope:
    """Stop the workflow's running steps, then delete it with its runs, logs and files."""
    workflow, steps = await ctx.workflows.delete(ctx.principal.user_id, args.workflow_id)
    ctx.workflows.dispatcher.feed.publish(workflow.id, removed_for=ctx.principal.user_id)
    return WorkflowEnvelope(workflow=workflow_model(workflow, [step_model(s) for s in steps]))


@registry.capability(scope="workflows:read", title="Wait for a workflow", read_only=True, idempotent=True,
                     mcp_only=True, waits=True)
async def workflows_wait(ctx: Context, args: WorkflowWait) -> WorkflowEnvelope:
    """Wait until the workflow ends (or timeoutSeconds pass) and return it; reports progress and each step's end."""
    service = ctx.workflows
    deadline = time.monotonic() + args.timeout_seconds
    reported: set[str] = set()
    sent = -1  # MCP progress must increase from one notification to the next
    while True:
        workflow = await service.get(ctx.principal.user_id, args.workflow_id)
        steps = await service.steps(workflow.id)
        for step in steps:
            if step.status not in ACTIVE and step.name not in reported:
                reported.add(step.name)
                await ctx.log("info", f"step {step.name} {step.status}")
        done = sum(s.status == "completed" for s in steps)
        if done > sent:
            await ctx.progress(done, len(steps), f"{done}/{len(steps)} steps completed; workflow {workflow.status}")
            sent = done
        remaining = deadline - time.monotonic()
        if workflow.status not in ACTIVE or remaining <= 0:
            return WorkflowEnvelope(workflow=await _full(service, workflow))
        await service.dispatcher.wait_change(workflow.id, min(remaining, 1.0))


@resource("workflow-step-logs", "kubegate://workflows/{workflowId}/steps/{step}/logs", scope="workflows:read",
          description="The logs (stdout and stderr) of one step of one of your workflows")
async def workflow_step_logs(ctx: Context, variables: dict[str, str]) -> str:
    workflow = await ctx.workflows.get(ctx.principal.user_id, variables["workflowId"])
    step = next((s for s in await ctx.workflows.steps(workflow.id) if s.name == variables["step"]), None)
    if step is None:
        raise NotFound("Step not found")
    return ctx.workflows.logs(step)
