"""Workflows: store a validated DAG of steps, apply step events, resume after a restart.

Each step gets its run id (``wfrun_...``) when the workflow is created, so the dispatcher can
route the runtime's events here and env values can wait in ``run_secrets`` under that id until
the step starts. What happens next is the ``Scheduler``'s job.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from mcp_server.config import Settings
from mcp_server.engine import dag
from mcp_server.engine.dispatcher import Dispatcher
from mcp_server.engine.queue import admit
from mcp_server.engine.runs import resolve_timeout
from mcp_server.engine.scheduler import Scheduler
from mcp_server.errors import NotFound
from mcp_server.ids import new_id, stamp
from mcp_server.models.workflows import StepCreate, WorkflowCreate, WorkflowStatus
from mcp_server.runtime.base import RunEvent, RunSpec, Runtime
from mcp_server.store.runs import ACTIVE, outcome
from mcp_server.store.workflows import NewStep, StepRecord, WorkflowRecord, WorkflowStore

RUN_PREFIX = "wfrun_"


class WorkflowService:
    def __init__(self, workflows: WorkflowStore, runtime: Runtime, dispatcher: Dispatcher,
                 settings: Settings) -> None:
        self.workflows = workflows
        self.runtime = runtime
        self.dispatcher = dispatcher
        self.settings = settings
        self.scheduler = Scheduler(workflows, runtime, dispatcher, settings)
        dispatcher.route(RUN_PREFIX, self.on_event)

    async def create(self, user_id: str, args: WorkflowCreate) -> tuple[WorkflowRecord, list[StepRecord]]:
        """Store the workflow and start its first steps; answers the records as created (all pending)."""
        dag.validate(args.steps, self.settings.max_workflow_steps)
        await admit(self.runtime, user_id, "workflows")
        workflow = WorkflowRecord(id=new_id("workflow"), user_id=user_id, name=args.name, status="pending",
                                  step_count=len(args.steps), created_at=stamp(), started_at=None,
                                  completed_at=None)
        steps = await self.workflows.create(workflow, [self._new_step(s) for s in args.steps])
        await self.scheduler.advance(workflow.id)
        return workflow, steps

    def _new_step(self, step: StepCreate) -> NewStep:
        return NewStep(
            name=step.name, run_id=new_id("wfrun"), image=step.image, command=tuple(step.command), env=step.env,
            depends_on=tuple(dict.fromkeys(step.depends_on)),
            timeout_seconds=resolve_timeout(self.settings, step.timeout, field=f"steps.{step.name}.timeout"),
            size=step.size, network=step.network,
        )

    async def get(self, user_id: str, workflow_id: str) -> WorkflowRecord:
        workflow = await self.workflows.get(workflow_id, user_id)
        if workflow is None:
            raise NotFound("Workflow not found")
        return workflow

    async def steps(self, workflow_id: str) -> list[StepRecord]:
        return await self.workflows.steps(workflow_id)

    async def page(self, user_id: str, status: WorkflowStatus | None, limit: int,
                   cursor: str | None) -> tuple[list[tuple[WorkflowRecord, int]], str | None]:
        """A page of workflows, each with how many of its steps completed."""
        return await self.workflows.page(user_id, status, limit, cursor)

    async def delete(self, user_id: str, workflow_id: str) -> tuple[WorkflowRecord, list[StepRecord]]:
        """Forget the workflow, then stop its running steps and remove every run it made."""
        workflow = await self.get(user_id, workflow_id)
        async with self.scheduler.lock(workflow_id):
            steps = await self.steps(workflow_id)
            await self.workflows.delete(workflow_id, [s.run_id for s in steps])
        now = stamp()
        if workflow.status in ACTIVE:
            workflow = replace(workflow, status="failed", completed_at=now)
        shown = [
            replace(s, status="failed" if s.in_flight else "skipped", reason="cancelled", completed_at=now)
            if s.status in ACTIVE else s
            for s in steps
        ]
        await asyncio.gather(*(self.runtime.remove(s.run_id) for s in steps if s.claimed_at or s.started_at))
        self.scheduler.forget_lock(workflow_id)
        self.dispatcher.changed(workflow_id)
        return workflow, shown

    def logs(self, step: StepRecord, tail: int | None = None) -> str:
        if step.started_at is None:
            return ""
        return self.runtime.read_logs(step.run_id, tail=tail or self.settings.log_tail_bytes)

    async def on_event(self, event: RunEvent) -> None:
        workflow_id = await self.workflows.workflow_of(event.run_id)
        if workflow_id is None:
            return  # its workflow was deleted
        if event.kind == "started":
            await self.workflows.step_started(event.run_id, stamp(event.at))
            await self.workflows.begin(workflow_id, stamp(event.at))
            self.dispatcher.changed(workflow_id)
            return
        await self.workflows.end_step(  # pending: it ended while queued (cancelled, could not start)
            event.run_id, was=("pending", "running"), status=outcome(event.reason, event.exit_code),
            reason=event.reason, message=event.message, exit_code=event.exit_code, output=event.output,
            at=stamp(event.at))
        await self.workflows.secrets.forget(event.run_id)
        await self.scheduler.advance(workflow_id)

    async def active_specs(self) -> list[RunSpec]:
        """Runs of steps the store believes running: what ``Runtime.recover`` must account for."""
        return await self.workflows.running_specs()

    async def resume(self) -> None:
        """After ``recover``: drop env values of steps that started, then schedule every unfinished workflow."""
        await self.workflows.forget_started_secrets()
        for workflow_id in await self.workflows.unfinished():
            await self.scheduler.advance(workflow_id)
