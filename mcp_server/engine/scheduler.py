"""The workflow scheduler: one ``advance`` that moves a workflow as far as its steps allow.

``advance`` runs whenever something may have unblocked a step (the workflow was created, a
step exited, the gateway started) and never on a timer. Under a per-workflow lock it skips the
pending dependants of failed or skipped steps, starts every step whose dependencies all
completed (up to ``workflow_concurrency`` running at once), and derives the workflow's status.

Starting a step is a conditional UPDATE that claims it (``claimed_at``), committed *before*
``runtime.start``: only the process whose UPDATE changed the row starts the run, and a gateway
killed between the two leaves a run id the runtime does not know, which ``recover`` reports as
``lost``. So a step never runs twice and is never forgotten. A claimed step stays ``pending``
while it waits for a fair-share slot and turns ``running`` when its run reports ``started``, as
a task does (the workflow too: ``running`` once one of its steps runs). Env values wait in ``run_secrets``
until their step has started (or will never start). Branches independent of a failed step keep
running; the workflow is ``failed`` once nothing is left to run.

A step's upstream outputs reach it two ways: spliced into its image, command and env where it
wrote ``{{steps.NAME.output}}``, and always as ``KUBEGATE_OUTPUT_<NAME>`` in its env, which
a shell reads as data (``"$KUBEGATE_OUTPUT_BUILD"``), never as code. The rendered step is
measured before anything is rendered: over ``max_step_bytes`` it fails with a reason saying so.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace

from pydantic import ValidationError

from mcp_server.config import Settings
from mcp_server.engine import dag
from mcp_server.engine.dispatcher import Dispatcher
from mcp_server.engine.runs import start_failure
from mcp_server.ids import parse, stamp, utcnow
from mcp_server.models.workflows import IMAGE, StepStatus, WorkflowStatus
from mcp_server.observability import METRICS
from mcp_server.runtime.base import RunSpec, Runtime
from mcp_server.store.runs import BLOCKING, TERMINAL
from mcp_server.store.workflows import StepRecord, WorkflowRecord, WorkflowStore

log = logging.getLogger(__name__)

Steps = dict[str, StepRecord]


class StepRefused(ValueError):
    """The step cannot run as rendered; its message says why."""


class Scheduler:
    def __init__(self, workflows: WorkflowStore, runtime: Runtime, dispatcher: Dispatcher,
                 settings: Settings) -> None:
        self.workflows = workflows
        self.runtime = runtime
        self.dispatcher = dispatcher
        self.settings = settings
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, workflow_id: str) -> asyncio.Lock:
        return self._locks.setdefault(workflow_id, asyncio.Lock())

    def forget_lock(self, workflow_id: str) -> None:
        """Drop the lock of a workflow that will not advance again (finished or deleted)."""
        self._locks.pop(workflow_id, None)

    async def advance(self, workflow_id: str) -> None:
        """Skip what can no longer run, start what can, and settle the workflow's status."""
        async with self.lock(workflow_id):
            workflow = await self.workflows.get(workflow_id)
            if workflow is None or workflow.status in TERMINAL:
                self.forget_lock(workflow_id)
                return
            steps = {s.name: s for s in await self.workflows.steps(workflow_id)}
            graph = {n: s.depends_on for n, s in steps.items()}
            order = dag.topological_order(graph)
            lineage = dag.ancestors(graph, order)
            # A step that fails as it starts blocks others and frees its slot: go round again.
            while True:
                await self._skip_blocked(steps, order)
                workflow, failed = await self._start_ready(workflow, steps, order, lineage)
                if not failed:
                    break
            if await self._settle(workflow, list(steps.values())):
                self.forget_lock(workflow_id)
        self.dispatcher.changed(workflow_id)

    async def _skip_blocked(self, steps: Steps, order: Sequence[str]) -> None:
        for name in order:  # dependencies first, so a skip cascades in one pass
            step = steps[name]
            blocker = next((d for d in step.depends_on if steps[d].status in BLOCKING), None)
            if step.status != "pending" or blocker is None:
                continue
            message = f"not run: {blocker} {steps[blocker].status}"
            steps[name] = await self.end_step(step, "skipped", reason="skipped", message=message)

    async def _start_ready(self, workflow: WorkflowRecord, steps: Steps, order: Sequence[str],
                           lineage: dict[str, set[str]]) -> tuple[WorkflowRecord, bool]:
        """Start what is ready; True if some step failed instead of starting."""
        slots = self.settings.workflow_concurrency - sum(s.in_flight for s in steps.values())
        failed = False
        for name in order:
            step = steps[name]
            ready = step.status == "pending" and step.claimed_at is None
            if ready and all(steps[d].status == "completed" for d in step.depends_on):
                if slots <= 0:
                    METRICS.held_back.inc()  # ready, but the workflow is at its concurrency limit
                    continue
                workflow, steps[name] = await self._start(workflow, step, steps, lineage[name])
                failed |= steps[name].status == "failed"
                slots -= 1
        return workflow, failed

    async def _start(self, workflow: WorkflowRecord, step: StepRecord, steps: Steps,
                     upstream: set[str]) -> tuple[WorkflowRecord, StepRecord]:
        outputs = {n: steps[n].output or "" for n in upstream}
        try:
            spec = self._spec(workflow, step, outputs, await self.workflows.secrets.get(step.run_id))
        except StepRefused as exc:
            return workflow, await self.end_step(step, "failed", reason="error", message=str(exc))
        now = stamp()
        claimed = await self.workflows.claim(step.run_id, now)
        step = replace(step, claimed_at=now)
        if not claimed:
            return workflow, step  # another gateway on this store took it
        try:
            await self.runtime.start(spec)
            _observe_handoff(step, steps)
        except Exception as exc:
            log.warning("step %s of %s could not start: %s", step.name, workflow.id, exc)
            step = await self.end_step(step, "failed", reason="error", message=start_failure(exc))
        else:
            await self.workflows.secrets.forget(step.run_id)
        return workflow, step

    def _spec(self, workflow: WorkflowRecord, step: StepRecord, outputs: dict[str, str],
              env: dict[str, str]) -> RunSpec:
        passed = {dag.output_variable(name): value for name, value in outputs.items()}  # never rendered again
        size = dag.rendered_size([step.image, *step.command, *env, *env.values()], outputs)
        size += sum(len(k) + len(v.encode()) for k, v in passed.items())
        if size > self.settings.max_step_bytes:
            raise StepRefused(
                f"after substituting upstream outputs this step's image, command and env come to {size} bytes,"
                f" over the limit of {self.settings.max_step_bytes} (KUBEGATE_MAX_STEP_BYTES): read outputs"
                " from $KUBEGATE_OUTPUT_<STEP> instead of repeating {{steps.NAME.output}}")
        image = dag.render(step.image, outputs)
        try:
            IMAGE.validate_python(image)
        except ValidationError:
            raise StepRefused(f"image {image!r} (after substituting outputs) is not a valid reference") from None
        command = [dag.render(arg, outputs) for arg in step.command]
        env = {**{k: dag.render(v, outputs) for k, v in env.items()}, **passed}
        if any("\x00" in text for text in (*command, *env.values())):
            raise StepRefused("an upstream output holds a NUL byte, which a command or env value cannot carry")
        return step.spec(workflow.user_id, image=image, command=command, env=env)

    async def end_step(self, step: StepRecord, status: StepStatus, *, reason: str, message: str | None,
                       was: StepStatus = "pending") -> StepRecord:
        """End a step the runtime never ran (or could not start) and drop its env values."""
        now = stamp()
        await self.workflows.end_step(step.run_id, was=was, status=status, reason=reason, message=message, at=now)
        await self.workflows.secrets.forget(step.run_id)
        return replace(step, status=status, reason=reason, message=message, completed_at=now)

    async def _settle(self, workflow: WorkflowRecord, steps: list[StepRecord]) -> bool:
        """Finish the workflow once every step has ended; True when it has."""
        if any(s.status not in TERMINAL for s in steps):
            return False
        status: WorkflowStatus = "completed" if all(s.status == "completed" for s in steps) else "failed"
        await self.workflows.settle(workflow.id, status, stamp())
        return True


def _observe_handoff(step: StepRecord, steps: Steps) -> None:
    """From the last dependency's end to this step's start (``/metrics``); root steps have none."""
    ended = [done for d in step.depends_on if (done := steps[d].completed_at)]
    if ended:
        METRICS.handoff_seconds.observe(max(0.0, (utcnow() - parse(max(ended))).total_seconds()))
