"""Tasks: store them, hand their runs to the runtime, and apply the runtime's events.

Creation is atomic as a user sees it: the task is stored ``pending``, then started; a run the
runtime cannot start (no file descriptors left, permission denied, the cluster refusing it)
ends the task ``failed`` with a message, and the caller gets that task, never an error with a
task left ``pending``.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from mcp_server.config import Settings
from mcp_server.engine.dispatcher import Dispatcher
from mcp_server.engine.queue import admit
from mcp_server.engine.runs import resolve_timeout, start_failure
from mcp_server.errors import NotFound
from mcp_server.ids import new_id, stamp
from mcp_server.models.tasks import TaskCreate, TaskStatus
from mcp_server.runtime.base import RunEvent, RunSpec, Runtime
from mcp_server.store.runs import ACTIVE, outcome
from mcp_server.store.tasks import NewTask, TaskRecord, TaskStore

log = logging.getLogger(__name__)


class TaskService:
    def __init__(self, tasks: TaskStore, runtime: Runtime, dispatcher: Dispatcher, settings: Settings) -> None:
        self.tasks = tasks
        self.runtime = runtime
        self.dispatcher = dispatcher
        self.settings = settings
        dispatcher.route("task_", self.on_event)

    async def create(self, user_id: str, args: TaskCreate) -> TaskRecord:
        await admit(self.runtime, user_id, "tasks")
        task = await self.tasks.insert(NewTask(
            id=new_id("task"), user_id=user_id, name=args.name, image=args.image, command=tuple(args.command),
            env_keys=tuple(sorted(args.env)), timeout_seconds=resolve_timeout(self.settings, args.timeout),
            size=args.size, network=args.network, created_at=stamp(),
        ))
        try:
            await self.runtime.start(task.spec(args.env))
        except Exception as exc:
            log.warning("task %s could not start: %s", task.id, exc)
            at, message = stamp(), start_failure(exc)
            await self.tasks.ended(task.id, status="failed", reason="error", message=message, at=at, ran=False)
            self.dispatcher.changed(task.id)
            return replace(task, status="failed", reason="error", message=message, completed_at=at)
        return task

    async def get(self, user_id: str, task_id: str) -> TaskRecord:
        task = await self.tasks.get(user_id, task_id)
        if task is None:
            raise NotFound("Task not found")
        return task

    async def page(self, user_id: str, status: TaskStatus | None, limit: int,
                   cursor: str | None) -> tuple[list[TaskRecord], str | None]:
        return await self.tasks.page(user_id, status, limit, cursor)

    async def delete(self, user_id: str, task_id: str) -> TaskRecord:
        task = await self.get(user_id, task_id)
        await self.runtime.remove(task_id)
        if task.status in ACTIVE:
            task = replace(task, status="failed", reason="cancelled", completed_at=stamp())
        await self.tasks.delete(task_id)
        self.dispatcher.changed(task_id)
        return task

    def logs(self, task_id: str) -> str:
        try:
            return self.runtime.read_logs(task_id, tail=self.settings.log_tail_bytes)
        except OSError as exc:  # a run that never got its files: no logs, rather than a failed read
            log.warning("logs of %s unreadable: %s", task_id, type(exc).__name__)
            return ""

    async def on_event(self, event: RunEvent) -> None:
        at = stamp(event.at)
        if event.kind == "started":
            await self.tasks.started(event.run_id, at)
        else:
            await self.tasks.ended(event.run_id, status=outcome(event.reason, event.exit_code), reason=event.reason,
                                   exit_code=event.exit_code, output=event.output, at=at)
        self.dispatcher.changed(event.run_id)

    async def active_specs(self) -> list[RunSpec]:
        """Runs the store believes active: what ``Runtime.recover`` must account for after a restart."""
        return [task.spec() for task in await self.tasks.active()]
