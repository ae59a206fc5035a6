"""Workflows: store a validated DAG of steps, apply step events, resume after a restart.

Each step gets its run id (``wfrun_...``) when the workflow is created, so the dispatcher can
route the runtime's events here and env values can wait in ``run_secrets`` under that id until
the step starts. What happens next is the ``Scheduler``'s job.
"""

from __future__ import annotations

import asyncio
import json

from mcp_server.config import Settings
from mcp_server.engine import dag
from mcp_server.engine.dispatcher import Dispatcher
from mcp_server.engine.queue import admit
from mcp_server.engine.scheduler import Row, Scheduler
from mcp_server.engine.tasks import resolve_timeout
from mcp_server.errors import NotFound
from mcp_server.ids import new_id, stamp
from mcp_server.models.workflows import StepCreate, WorkflowCreate
from mcp_server.runtime.base import RunEvent, RunSpec, Runtime
from mcp_server.store.db import Database
from mcp_server.store.pages import fetch_page

RUN_PREFIX = "wfrun_"
ACTIVE = ("pending", "running")


class WorkflowService:
    def __init__(self, db: Database, runtime: Runtime, dispatcher: Dispatcher, settings: Settings) -> None:
        self.db = db
        self.runtime = runtime
        self.dispatcher = dispatcher
        self.settings = settings
        self.scheduler = Scheduler(db, runtime, dispatcher, settings)
        dispatcher.route(RUN_PREFIX, self.on_event)

    async def create(self, user_id: str, args: WorkflowCreate) -> tuple[Row, list[Row]]:
        """Store the workflow and start its first steps; answers the rows as created (all pending)."""
        dag.validate(args.steps, self.settings.max_workflow_steps)
        await admit(self.runtime, user_id, "workflows")
        workflow: Row = {
            "id": new_id("workflow"), "user_id": user_id, "name": args.name, "status": "pending",
            "step_count": len(args.steps), "created_at": stamp(),
        }
        steps = [self._step_row(workflow["id"], i, s) for i, s in enumerate(args.steps)]
        async with self.db.transaction():
            await _insert(self.db, "workflows", workflow)
            for row in steps:
                await _insert(self.db, "workflow_steps", row)
            for step in args.steps:
                if step.env:
                    run_id = next(r["run_id"] for r in steps if r["name"] == step.name)
                    await _insert(self.db, "run_secrets", {"run_id": run_id, "env": json.dumps(step.env)})
        await self.scheduler.advance(workflow["id"])
        return workflow, steps

    def _step_row(self, workflow_id: str, position: int, step: StepCreate) -> Row:
        return {
            "workflow_id": workflow_id, "position": position, "name": step.name, "run_id": new_id("wfrun"),
            "image": step.image, "command": json.dumps(step.command), "env_keys": json.dumps(sorted(step.env)),
            "depends_on": json.dumps(list(dict.fromkeys(step.depends_on))),
            "timeout_seconds": resolve_timeout(self.settings, step.timeout, field=f"steps.{step.name}.timeout"),
            "size": step.size, "network": int(step.network), "status": "pending",
        }

    async def get(self, user_id: str, workflow_id: str) -> Row:
        row = await self.db.fetch_one("SELECT * FROM workflows WHERE id = ? AND user_id = ?", (workflow_id, user_id))
        if row is None:
            raise NotFound("Workflow not found")
        return row

    async def steps(self, workflow_id: str) -> list[Row]:
        return await self.scheduler.steps(workflow_id)

    async def page(self, user_id: str, status: str | None, limit: int,
                   cursor: str | None) -> tuple[list[Row], str | None]:
        """A page of workflows, each with ``completed_steps`` counted."""
        rows, next_cursor = await fetch_page(self.db, "workflows", limit=limit, cursor=cursor, user_id=user_id,
                                             status=status)
        counts = await self.db.fetch_all(
            f"SELECT workflow_id, COUNT(*) AS n FROM workflow_steps WHERE status = 'completed'"
            f" AND workflow_id IN ({', '.join('?' * len(rows))}) GROUP BY workflow_id", [r["id"] for r in rows])
        done = {c["workflow_id"]: c["n"] for c in counts}
        for row in rows:
            row["completed_steps"] = done.get(row["id"], 0)
        return rows, next_cursor

    async def delete(self, user_id: str, workflow_id: str) -> tuple[Row, list[Row]]:
        """Forget the workflow, then stop its running steps and remove every run it made."""
        workflow = await self.get(user_id, workflow_id)
        async with self.scheduler.lock(workflow_id):
            steps = await self.steps(workflow_id)
            await self.db.execute("DELETE FROM workflows WHERE id = ?", (workflow_id,))
            for step in steps:
                await self.scheduler.forget_secret(step["run_id"])
        now = stamp()
        if workflow["status"] in ACTIVE:
            workflow.update(status="failed", completed_at=now)
        for step in steps:
            if step["status"] in ACTIVE:
                step.update(status="failed" if step["status"] == "running" else "skipped", reason="cancelled",
                            completed_at=now)
        await asyncio.gather(*(self.runtime.remove(s["run_id"]) for s in steps if s["started_at"]))
        self.scheduler.forget_lock(workflow_id)
        self.dispatcher.changed(workflow_id)
        return workflow, steps

    def logs(self, step: Row, tail: int | None = None) -> str:
        if step["started_at"] is None:
            return ""
        return self.runtime.read_logs(step["run_id"], tail=tail or self.settings.log_tail_bytes)

    async def on_event(self, event: RunEvent) -> None:
        step = await self.db.fetch_one("SELECT workflow_id FROM workflow_steps WHERE run_id = ?", (event.run_id,))
        if step is None:
            return  # its workflow was deleted
        if event.kind == "started":
            await self.db.execute("UPDATE workflow_steps SET started_at = ? WHERE run_id = ? AND status = 'running'",
                                  (stamp(event.at), event.run_id))
            self.dispatcher.changed(step["workflow_id"])
            return
        ok = event.reason == "completed" and event.exit_code == 0
        await self.db.execute(
            "UPDATE workflow_steps SET status = ?, exit_code = ?, reason = ?, message = ?, output = ?,"
            " completed_at = ? WHERE run_id = ? AND status = 'running'",
            ("completed" if ok else "failed", event.exit_code, event.reason, event.message, event.output,
             stamp(event.at), event.run_id))
        await self.scheduler.forget_secret(event.run_id)
        await self.scheduler.advance(step["workflow_id"])

    async def active_specs(self) -> list[RunSpec]:
        """Runs of steps the store believes running: what ``Runtime.recover`` must account for."""
        rows = await self.db.fetch_all(
            "SELECT s.*, w.user_id FROM workflow_steps s JOIN workflows w ON w.id = s.workflow_id"
            " WHERE s.status = 'running'")
        return [
            RunSpec(run_id=r["run_id"], owner=r["user_id"], image=r["image"], command=json.loads(r["command"]),
                    timeout_seconds=r["timeout_seconds"], size=r["size"], network=bool(r["network"]),
                    labels={"workflow": r["workflow_id"], "step": r["name"]})
            for r in rows
        ]

    async def resume(self) -> None:
        """After ``recover``: drop env values of steps that started, then schedule every unfinished workflow."""
        await self.db.execute(
            "DELETE FROM run_secrets WHERE run_id IN (SELECT run_id FROM workflow_steps WHERE status != 'pending')")
        rows = await self.db.fetch_all("SELECT id FROM workflows WHERE status IN ('pending', 'running')")
        for row in rows:
            await self.scheduler.advance(row["id"])


async def _insert(db: Database, table: str, row: Row) -> None:
    await db.execute(f"INSERT INTO {table}({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", row.values())
