"""Tasks: store rows, hand runs to the runtime, and apply the runtime's events."""

from __future__ import annotations

import json
from typing import Any

from mcp_server.config import Settings
from mcp_server.engine.dispatcher import Dispatcher
from mcp_server.engine.queue import admit
from mcp_server.errors import NotFound, ValidationFailed
from mcp_server.ids import new_id, stamp
from mcp_server.models.tasks import TaskCreate
from mcp_server.models.validation import format_duration, parse_duration
from mcp_server.runtime.base import RunEvent, RunSpec, Runtime
from mcp_server.store.db import Database
from mcp_server.store.pages import fetch_page

ACTIVE = ("pending", "running")


def resolve_timeout(settings: Settings, timeout: str | None, field: str = "timeout") -> float:
    seconds = parse_duration(timeout) if timeout else float(settings.default_timeout_seconds)
    if seconds > settings.max_timeout_seconds:
        raise ValidationFailed(f"must be at most {format_duration(settings.max_timeout_seconds)}", field=field)
    return seconds


class TaskService:
    def __init__(self, db: Database, runtime: Runtime, dispatcher: Dispatcher, settings: Settings) -> None:
        self.db = db
        self.runtime = runtime
        self.dispatcher = dispatcher
        self.settings = settings
        dispatcher.route("task_", self.on_event)

    async def create(self, user_id: str, args: TaskCreate) -> dict[str, Any]:
        timeout = resolve_timeout(self.settings, args.timeout)
        await admit(self.runtime, user_id, "tasks")
        row: dict[str, Any] = {
            "id": new_id("task"), "user_id": user_id, "name": args.name, "image": args.image,
            "command": json.dumps(args.command), "env_keys": json.dumps(sorted(args.env)),
            "timeout_seconds": timeout, "size": args.size, "network": int(args.network), "status": "pending",
            "created_at": stamp(),
        }
        async with self.db.transaction():
            await self.db.execute(
                f"INSERT INTO tasks({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", row.values()
            )
        await self.runtime.start(RunSpec(
            run_id=row["id"], owner=user_id, image=args.image, command=args.command, env=args.env,
            timeout_seconds=timeout, size=args.size, network=args.network, labels={"task": row["id"]},
        ))
        return row

    async def get(self, user_id: str, task_id: str) -> dict[str, Any]:
        row = await self.db.fetch_one("SELECT * FROM tasks WHERE id = ? AND user_id = ?", (task_id, user_id))
        if row is None:
            raise NotFound("Task not found")
        return row

    async def page(self, user_id: str, status: str | None, limit: int,
                   cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        return await fetch_page(self.db, "tasks", limit=limit, cursor=cursor, user_id=user_id, status=status)

    async def delete(self, user_id: str, task_id: str) -> dict[str, Any]:
        row = await self.get(user_id, task_id)
        await self.runtime.remove(task_id)
        if row["status"] in ACTIVE:
            row.update(status="failed", reason="cancelled", completed_at=stamp())
        await self.db.execute("DELETE FROM tasks WHERE id = ?", (task_id,))
        self.dispatcher.changed(task_id)
        return row

    def logs(self, task_id: str) -> str:
        return self.runtime.read_logs(task_id, tail=self.settings.log_tail_bytes)

    async def on_event(self, event: RunEvent) -> None:
        at = stamp(event.at)
        if event.kind == "started":
            await self.db.execute(
                "UPDATE tasks SET status = 'running', started_at = COALESCE(started_at, ?)"
                " WHERE id = ? AND status = 'pending'", (at, event.run_id),
            )
        else:
            ok = event.reason == "completed" and event.exit_code == 0
            await self.db.execute(
                "UPDATE tasks SET status = ?, exit_code = ?, reason = ?, output = ?, completed_at = ?,"
                " started_at = COALESCE(started_at, ?) WHERE id = ? AND status IN ('pending', 'running')",
                ("completed" if ok else "failed", event.exit_code, event.reason, event.output, at, at, event.run_id),
            )
        self.dispatcher.changed(event.run_id)

    async def active_specs(self) -> list[RunSpec]:
        """Runs the store believes active: what ``Runtime.recover`` must account for after a restart."""
        rows = await self.db.fetch_all("SELECT * FROM tasks WHERE status IN ('pending', 'running')")
        return [
            RunSpec(run_id=r["id"], owner=r["user_id"], image=r["image"], command=json.loads(r["command"]),
                    timeout_seconds=r["timeout_seconds"], size=r["size"], network=bool(r["network"]),
                    labels={"task": r["id"]})
            for r in rows
        ]
