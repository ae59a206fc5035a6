"""Tasks: one-off runs. Env values are handed to the runtime at creation and never stored."""

from __future__ import annotations

from dataclasses import dataclass

from mcp_server.models.tasks import TaskStatus
from mcp_server.runtime.base import RunSpec
from mcp_server.store.db import Database
from mcp_server.store.pages import fetch_page
from mcp_server.store.rows import Row, in_list, insert, json_tuple, to_json
from mcp_server.store.runs import ACTIVE, RunFields, run_spec


@dataclass(frozen=True, slots=True)
class TaskRecord(RunFields):
    id: str
    user_id: str
    name: str
    env_keys: tuple[str, ...]
    status: TaskStatus
    reason: str | None
    message: str | None
    exit_code: int | None
    output: str | None
    created_at: str
    started_at: str | None
    completed_at: str | None

    def spec(self, env: dict[str, str] | None = None) -> RunSpec:
        return run_spec(self, run_id=self.id, owner=self.user_id, labels={"task": self.id}, env=env)


@dataclass(frozen=True, slots=True)
class NewTask(RunFields):
    id: str
    user_id: str
    name: str
    env_keys: tuple[str, ...]
    created_at: str


def _record(row: Row) -> TaskRecord:
    return TaskRecord(
        id=row["id"], user_id=row["user_id"], name=row["name"], image=row["image"],
        command=json_tuple(row["command"]), env_keys=json_tuple(row["env_keys"]),
        timeout_seconds=row["timeout_seconds"], size=row["size"], network=bool(row["network"]),
        status=row["status"], reason=row["reason"], message=row["message"], exit_code=row["exit_code"],
        output=row["output"], created_at=row["created_at"], started_at=row["started_at"],
        completed_at=row["completed_at"],
    )


class TaskStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, new: NewTask) -> TaskRecord:
        await insert(self._db, "tasks", {
            "id": new.id, "user_id": new.user_id, "name": new.name, "image": new.image,
            "command": to_json(new.command), "env_keys": to_json(new.env_keys),
            "timeout_seconds": new.timeout_seconds, "size": new.size, "network": int(new.network),
            "status": "pending", "created_at": new.created_at,
        })
        return TaskRecord(
            id=new.id, user_id=new.user_id, name=new.name, image=new.image, command=new.command,
            env_keys=new.env_keys, timeout_seconds=new.timeout_seconds, size=new.size, network=new.network,
            status="pending", reason=None, message=None, exit_code=None, output=None, created_at=new.created_at,
            started_at=None, completed_at=None,
        )

    async def get(self, user_id: str, task_id: str) -> TaskRecord | None:
        row = await self._db.fetch_one("SELECT * FROM tasks WHERE id = ? AND user_id = ?", (task_id, user_id))
        return _record(row) if row else None

    async def page(self, user_id: str, status: TaskStatus | None, limit: int,
                   cursor: str | None) -> tuple[list[TaskRecord], str | None]:
        return await fetch_page(self._db, "tasks", _record, limit=limit, cursor=cursor, user_id=user_id,
                                status=status)

    async def delete(self, task_id: str) -> None:
        await self._db.execute("DELETE FROM tasks WHERE id = ?", (task_id,))

    async def started(self, task_id: str, at: str) -> None:
        await self._db.execute(
            "UPDATE tasks SET status = 'running', started_at = COALESCE(started_at, ?) WHERE id = ? AND status = ?",
            (at, task_id, "pending"))

    async def ended(self, task_id: str, *, status: TaskStatus, reason: str | None, at: str,
                    exit_code: int | None = None, output: str | None = None, message: str | None = None,
                    ran: bool = True) -> None:
        """Record how the task ended, unless it had ended already (``ran=False``: it never started)."""
        active, params = in_list(ACTIVE)
        await self._db.execute(
            "UPDATE tasks SET status = ?, exit_code = ?, reason = ?, output = ?, message = ?, completed_at = ?,"
            f" started_at = COALESCE(started_at, ?) WHERE id = ? AND status IN {active}",
            (status, exit_code, reason, output, message, at, at if ran else None, task_id, *params))

    async def active(self) -> list[TaskRecord]:
        """Every task not yet ended, of every user: what recovery must account for."""
        active, params = in_list(ACTIVE)
        return [_record(row) for row in await self._db.fetch_all(f"SELECT * FROM tasks WHERE status IN {active}",
                                                                   params)]
