"""Workflows and their steps. A workflow's status is derived from its steps by the scheduler.

Every change of a step's status is conditional on the status it had (``... AND status = ?``),
so two gateways on one store can never both claim a step, and an event arriving late never
overwrites an ending.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mcp_server.models.workflows import StepStatus, WorkflowStatus
from mcp_server.runtime.base import RunSpec
from mcp_server.store.db import Database
from mcp_server.store.pages import fetch_page
from mcp_server.store.rows import Row, in_list, insert, json_tuple, to_json
from mcp_server.store.runs import ACTIVE, RunFields, run_spec
from mcp_server.store.secrets import RunSecrets


@dataclass(frozen=True, slots=True)
class WorkflowRecord:
    id: str
    user_id: str
    name: str
    status: WorkflowStatus
    step_count: int
    created_at: str
    started_at: str | None
    completed_at: str | None


@dataclass(frozen=True, slots=True)
class StepRecord(RunFields):
    workflow_id: str
    position: int
    name: str
    run_id: str
    env_keys: tuple[str, ...]
    depends_on: tuple[str, ...]
    status: StepStatus
    reason: str | None
    message: str | None
    exit_code: int | None
    output: str | None
    started_at: str | None
    completed_at: str | None
    claimed_at: str | None = None
    """When its run was handed to the runtime; it stays ``pending`` until the run starts."""

    @property
    def in_flight(self) -> bool:
        """Handed to the runtime and not ended: running, or waiting for a fair-share slot."""
        return self.status == "running" or (self.status == "pending" and self.claimed_at is not None)

    def spec(self, owner: str, *, image: str | None = None, command: Sequence[str] | None = None,
             env: Mapping[str, str] | None = None) -> RunSpec:
        return run_spec(self, run_id=self.run_id, owner=owner, labels={"workflow": self.workflow_id,
                        "step": self.name}, image=image, command=command, env=env)


@dataclass(frozen=True, slots=True)
class NewStep(RunFields):
    name: str
    run_id: str
    env: Mapping[str, str]
    depends_on: tuple[str, ...]


def _workflow(row: Row) -> WorkflowRecord:
    return WorkflowRecord(id=row["id"], user_id=row["user_id"], name=row["name"], status=row["status"],
                          step_count=row["step_count"], created_at=row["created_at"], started_at=row["started_at"],
                          completed_at=row["completed_at"])


def _step(row: Row) -> StepRecord:
    return StepRecord(
        workflow_id=row["workflow_id"], position=row["position"], name=row["name"], run_id=row["run_id"],
        image=row["image"], command=json_tuple(row["command"]), env_keys=json_tuple(row["env_keys"]),
        depends_on=json_tuple(row["depends_on"]), timeout_seconds=row["timeout_seconds"], size=row["size"],
        network=bool(row["network"]), status=row["status"], reason=row["reason"], message=row["message"],
        exit_code=row["exit_code"], output=row["output"], started_at=row["started_at"],
        completed_at=row["completed_at"], claimed_at=row["claimed_at"],
    )


class WorkflowStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self.secrets = RunSecrets(db)

    async def create(self, workflow: WorkflowRecord, steps: Sequence[NewStep]) -> list[StepRecord]:
        """Store the workflow, its steps (all pending) and their env values, in one transaction."""
        async with self._db.transaction():
            await insert(self._db, "workflows", {
                "id": workflow.id, "user_id": workflow.user_id, "name": workflow.name, "status": workflow.status,
                "step_count": workflow.step_count, "created_at": workflow.created_at,
            })
            for position, step in enumerate(steps):
                await insert(self._db, "workflow_steps", {
                    "workflow_id": workflow.id, "position": position, "name": step.name, "run_id": step.run_id,
                    "image": step.image, "command": to_json(step.command), "env_keys": to_json(sorted(step.env)),
                    "depends_on": to_json(step.depends_on), "timeout_seconds": step.timeout_seconds,
                    "size": step.size, "network": int(step.network), "status": "pending",
                })
                if step.env:
                    await self.secrets.put(step.run_id, step.env)
        return await self.steps(workflow.id)

    async def get(self, workflow_id: str, user_id: str | None = None) -> WorkflowRecord | None:
        """The workflow; with ``user_id``, only if it is that user's."""
        if user_id is None:
            row = await self._db.fetch_one("SELECT * FROM workflows WHERE id = ?", (workflow_id,))
        else:
            row = await self._db.fetch_one("SELECT * FROM workflows WHERE id = ? AND user_id = ?",
                                           (workflow_id, user_id))
        return _workflow(row) if row else None

    async def steps(self, workflow_id: str) -> list[StepRecord]:
        rows = await self._db.fetch_all("SELECT * FROM workflow_steps WHERE workflow_id = ? ORDER BY position",
                                        (workflow_id,))
        return [_step(row) for row in rows]

    async def page(self, user_id: str, status: WorkflowStatus | None, limit: int,
                   cursor: str | None) -> tuple[list[tuple[WorkflowRecord, int]], str | None]:
        """A page of the user's workflows, each with how many of its steps completed."""
        records, next_cursor = await fetch_page(self._db, "workflows", _workflow, limit=limit, cursor=cursor,
                                                user_id=user_id, status=status)
        ids, params = in_list(r.id for r in records)
        counts = await self._db.fetch_all(
            f"SELECT workflow_id, COUNT(*) AS n FROM workflow_steps WHERE status = 'completed'"
            f" AND workflow_id IN {ids} GROUP BY workflow_id", params)
        done = {c["workflow_id"]: int(c["n"]) for c in counts}
        return [(r, done.get(r.id, 0)) for r in records], next_cursor

    async def delete(self, workflow_id: str, run_ids: Sequence[str]) -> None:
        """Delete the workflow, its steps and the env values its steps still held."""
        async with self._db.transaction():
            await self._db.execute("DELETE FROM workflows WHERE id = ?", (workflow_id,))
            for run_id in run_ids:
                await self.secrets.forget(run_id)

    async def workflow_of(self, run_id: str) -> str | None:
        row = await self._db.fetch_one("SELECT workflow_id FROM workflow_steps WHERE run_id = ?", (run_id,))
        return str(row["workflow_id"]) if row else None

    async def claim(self, run_id: str, at: str) -> bool:
        """Mark a pending step handed to the runtime; True only for the one caller whose update changed it.

        It stays ``pending`` (queued for a slot, as a task would be) until its run reports ``started``.
        """
        return bool(await self._db.execute(
            "UPDATE workflow_steps SET claimed_at = ? WHERE run_id = ? AND status = 'pending' AND claimed_at IS NULL",
            (at, run_id)))

    async def begin(self, workflow_id: str, at: str) -> None:
        await self._db.execute(
            "UPDATE workflows SET status = 'running', started_at = ? WHERE id = ? AND status = 'pending'",
            (at, workflow_id))

    async def step_started(self, run_id: str, at: str) -> None:
        """A claimed step's run started: pending -> running (a step claimed before 0035 is running already)."""
        await self._db.execute(
            "UPDATE workflow_steps SET status = 'running', started_at = ? WHERE run_id = ?"
            " AND claimed_at IS NOT NULL AND status IN ('pending', 'running')", (at, run_id))

    async def end_step(self, run_id: str, *, was: StepStatus | tuple[StepStatus, ...], status: StepStatus,
                       reason: str | None, at: str, message: str | None = None, exit_code: int | None = None,
                       output: str | None = None) -> None:
        """Record how a step ended, if it still is ``was`` (or one of them).

        A step with an exit code ran, so it has a ``startedAt`` (and logs) even if its ``started`` was never
        recorded: the process that follows every run (the recovery lease's holder) may report the end of a
        quick run another process started before that process has recorded its start. It is then the end
        time, the latest the run can have started."""
        wanted, params = in_list((was,) if isinstance(was, str) else was)
        await self._db.execute(
            "UPDATE workflow_steps SET status = ?, reason = ?, message = ?, exit_code = ?, output = ?,"
            f" completed_at = ?, started_at = COALESCE(started_at, ?) WHERE run_id = ? AND status IN {wanted}",
            (status, reason, message, exit_code, output, at, None if exit_code is None else at, run_id, *params))

    async def settle(self, workflow_id: str, status: WorkflowStatus, at: str) -> None:
        active, params = in_list(ACTIVE)
        await self._db.execute(
            "UPDATE workflows SET status = ?, completed_at = ?, started_at = COALESCE(started_at, ?)"
            f" WHERE id = ? AND status IN {active}", (status, at, at, workflow_id, *params))

    async def running_specs(self) -> list[RunSpec]:
        """Runs of every step handed to the runtime and not ended (running or queued): what recovery must
        account for."""
        rows = await self._db.fetch_all(
            "SELECT s.*, w.user_id FROM workflow_steps s JOIN workflows w ON w.id = s.workflow_id"
            " WHERE s.status = 'running' OR (s.status = 'pending' AND s.claimed_at IS NOT NULL)")
        return [_step(row).spec(row["user_id"]) for row in rows]

    async def unfinished(self) -> list[str]:
        active, params = in_list(ACTIVE)
        rows = await self._db.fetch_all(f"SELECT id FROM workflows WHERE status IN {active}", params)
        return [str(row["id"]) for row in rows]

    async def forget_started_secrets(self) -> None:
        """Drop env values of steps claimed or ended: their run has them, or will never run."""
        await self._db.execute(
            "DELETE FROM run_secrets WHERE run_id IN"
            " (SELECT run_id FROM workflow_steps WHERE status != 'pending' OR claimed_at IS NOT NULL)")
