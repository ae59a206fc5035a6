"""The workflow scheduler: one ``advance`` that moves a workflow as far as its steps allow.

``advance`` runs whenever something may have unblocked a step (the workflow was created, a
step exited, the gateway started) and never on a timer. Under a per-workflow lock it skips the
pending dependants of failed or skipped steps, starts every step whose dependencies all
completed (up to ``workflow_concurrency`` running at once), and derives the workflow's status.

Starting a step is a conditional UPDATE pending -> running, committed *before*
``runtime.start``: only the process whose UPDATE changed the row starts the run, and a gateway
killed between the two leaves a run id the runtime does not know, which ``recover`` reports as
``lost``. So a step never runs twice and is never forgotten. Env values wait in ``run_secrets``
until their step has started (or will never start). Branches independent of a failed step keep
running; the workflow is ``failed`` once nothing is left to run.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from mcp_server.config import Settings
from mcp_server.engine import dag
from mcp_server.engine.dispatcher import Dispatcher
from mcp_server.ids import parse, stamp, utcnow
from mcp_server.models.workflows import IMAGE
from mcp_server.observability import METRICS
from mcp_server.runtime.base import RunSpec, Runtime
from mcp_server.store.db import Database

log = logging.getLogger(__name__)

Row = dict[str, Any]
TERMINAL = ("completed", "failed", "skipped")
BLOCKING = ("failed", "skipped")


class Scheduler:
    def __init__(self, db: Database, runtime: Runtime, dispatcher: Dispatcher, settings: Settings) -> None:
        self.db = db
        self.runtime = runtime
        self.dispatcher = dispatcher
        self.settings = settings
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, workflow_id: str) -> asyncio.Lock:
        return self._locks.setdefault(workflow_id, asyncio.Lock())

    def forget_lock(self, workflow_id: str) -> None:
        """Drop the lock of a workflow that will not advance again (finished or deleted)."""
        self._locks.pop(workflow_id, None)

    async def steps(self, workflow_id: str) -> list[Row]:
        return await self.db.fetch_all(
            "SELECT * FROM workflow_steps WHERE workflow_id = ? ORDER BY position", (workflow_id,))

    async def advance(self, workflow_id: str) -> None:
        """Skip what can no longer run, start what can, and settle the workflow's status."""
        async with self.lock(workflow_id):
            workflow = await self.db.fetch_one("SELECT * FROM workflows WHERE id = ?", (workflow_id,))
            if workflow is None or workflow["status"] in TERMINAL:
                self.forget_lock(workflow_id)
                return
            steps = {s["name"]: s for s in await self.steps(workflow_id)}
            order = dag.topological_order({n: json.loads(s["depends_on"]) for n, s in steps.items()})
            # A step that fails as it starts blocks others and frees its slot: go round again.
            while True:
                await self._skip_blocked(steps, order)
                if not await self._start_ready(workflow, steps, order):
                    break
            if await self._settle(workflow, list(steps.values())):
                self.forget_lock(workflow_id)
        self.dispatcher.changed(workflow_id)

    async def _skip_blocked(self, steps: dict[str, Row], order: Sequence[str]) -> None:
        for name in order:  # dependencies first, so a skip cascades in one pass
            step = steps[name]
            blocker = next((d for d in json.loads(step["depends_on"]) if steps[d]["status"] in BLOCKING), None)
            if step["status"] != "pending" or blocker is None:
                continue
            message = f"not run: {blocker} {steps[blocker]['status']}"
            await self.end_step(step, "skipped", reason="skipped", message=message)

    async def _start_ready(self, workflow: Row, steps: dict[str, Row], order: Sequence[str]) -> bool:
        """Start what is ready; True if some step failed instead of starting."""
        slots = self.settings.workflow_concurrency - sum(s["status"] == "running" for s in steps.values())
        failed = False
        for name in order:
            step = steps[name]
            if step["status"] == "pending" and all(
                steps[d]["status"] == "completed" for d in json.loads(step["depends_on"])
            ):
                if slots <= 0:
                    METRICS.held_back.inc()  # ready, but the workflow is at its concurrency limit
                    continue
                await self._start(workflow, step, steps)
                failed |= step["status"] == "failed"
                slots -= 1
        return failed

    async def _start(self, workflow: Row, step: Row, steps: dict[str, Row]) -> None:
        outputs = {n: s["output"] for n, s in steps.items() if s["status"] == "completed"}
        secret = await self.db.fetch_one("SELECT env FROM run_secrets WHERE run_id = ?", (step["run_id"],))
        try:
            spec = self._spec(workflow, step, outputs, json.loads(secret["env"]) if secret else {})
        except ValueError as exc:
            await self.end_step(step, "failed", reason="error", message=str(exc))
            return
        now = stamp()
        claimed = await self.db.execute(
            "UPDATE workflow_steps SET status = 'running', started_at = ? WHERE run_id = ? AND status = 'pending'",
            (now, step["run_id"]))
        step.update(status="running", started_at=now)
        if not claimed:
            return  # another gateway on this store took it
        if workflow["status"] == "pending":
            workflow.update(status="running", started_at=now)
            await self.db.execute("UPDATE workflows SET status = 'running', started_at = ? WHERE id = ?"
                                  " AND status = 'pending'", (now, workflow["id"]))
        try:
            await self.runtime.start(spec)
            _observe_handoff(step, steps)
        except Exception as exc:
            log.warning("step %s of %s could not start: %s", step["name"], workflow["id"], exc)
            await self.end_step(step, "failed", reason="error", message=f"could not start: {exc}", was="running")
        else:
            await self.forget_secret(step["run_id"])

    def _spec(self, workflow: Row, step: Row, outputs: dict[str, str | None], env: dict[str, str]) -> RunSpec:
        image = dag.render(step["image"], outputs)
        try:
            IMAGE.validate_python(image)
        except ValidationError:
            raise ValueError(f"image {image!r} (after substituting outputs) is not a valid reference") from None
        return RunSpec(
            run_id=step["run_id"], owner=workflow["user_id"], image=image,
            command=[dag.render(arg, outputs) for arg in json.loads(step["command"])],
            env={k: dag.render(v, outputs) for k, v in env.items()}, timeout_seconds=step["timeout_seconds"],
            size=step["size"], network=bool(step["network"]),
            labels={"workflow": workflow["id"], "step": step["name"]},
        )

    async def end_step(self, step: Row, status: str, *, reason: str, message: str | None,
                       was: str = "pending") -> None:
        """End a step the runtime never ran (or could not start) and drop its env values."""
        now = stamp()
        await self.db.execute(
            "UPDATE workflow_steps SET status = ?, reason = ?, message = ?, completed_at = ? WHERE run_id = ?"
            " AND status = ?", (status, reason, message, now, step["run_id"], was))
        step.update(status=status, reason=reason, message=message, completed_at=now)
        await self.forget_secret(step["run_id"])

    async def forget_secret(self, run_id: str) -> None:
        await self.db.execute("DELETE FROM run_secrets WHERE run_id = ?", (run_id,))

    async def _settle(self, workflow: Row, steps: list[Row]) -> bool:
        """Finish the workflow once every step has ended; True when it has."""
        if any(s["status"] not in TERMINAL for s in steps):
            return False
        status = "completed" if all(s["status"] == "completed" for s in steps) else "failed"
        await self.db.execute(
            "UPDATE workflows SET status = ?, completed_at = ?, started_at = COALESCE(started_at, ?)"
            " WHERE id = ? AND status IN ('pending', 'running')", (status, stamp(), stamp(), workflow["id"]))
        return True


def _observe_handoff(step: Row, steps: dict[str, Row]) -> None:
    """From the last dependency's end to this step's start (``/metrics``); root steps have none."""
    ended = [steps[d]["completed_at"] for d in json.loads(step["depends_on"]) if steps[d].get("completed_at")]
    if ended:
        METRICS.handoff_seconds.observe(max(0.0, (utcnow() - parse(max(ended))).total_seconds()))
