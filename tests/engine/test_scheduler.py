"""The scheduler against a scripted runtime: parallelism, output passing, restarts, secrets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_server.config import Settings
from mcp_server.engine.dispatcher import Dispatcher
from mcp_server.engine.queue import FairShare
from mcp_server.engine.workflows import WorkflowService
from mcp_server.models.workflows import WorkflowCreate
from mcp_server.runtime.base import RunEvent
from mcp_server.store.stores import open_stores
from tests.runtime import double


class ScriptedRuntime(double.ScriptedRuntime):
    """The one test double, its runs named by their workflow step."""

    def finish(self, step: str, code: int = 0, output: str | None = None) -> None:
        self.host.finish(next(s.run_id for s in self.host.started if s.labels["step"] == step), code, output)


Engine = Callable[..., Any]


@pytest.fixture
async def engine(tmp_path: Path, database_url: str | None) -> AsyncIterator[Engine]:
    """Builds (runtime, service, user id) on one store (SQLite, then PostgreSQL), as successive gateways would.

    With ``fair_share`` the runtime is wrapped in the fair-share queue with those caps."""
    stores = await open_stores(tmp_path / "kubegate.db", database_url)
    user = await stores.users.ensure("engine@example.test")
    dispatchers: list[Dispatcher] = []
    hosts: list[double.ScriptedHost] = []

    async def make(runtime: ScriptedRuntime, fair_share: dict[str, int] | None = None,
                   **settings: Any) -> tuple[WorkflowService, str]:
        hosts.append(runtime.host)
        outer: Any = runtime
        if fair_share is not None:
            outer = FairShare(runtime, stores.run_queue, Settings(data_dir=tmp_path, **fair_share))  # type: ignore[arg-type]
        dispatcher = Dispatcher(outer)
        service = WorkflowService(stores.workflows, outer, dispatcher, Settings(data_dir=tmp_path, **settings))
        dispatcher.start()
        dispatchers.append(dispatcher)
        await outer.recover(await service.active_specs())
        await service.resume()
        return service, user.id

    yield make
    for dispatcher in dispatchers:
        await dispatcher.stop()
    for host in hosts:
        await host.close()
    await stores.close()


def workflow(*steps: tuple[str, list[str]], **fields: dict[str, Any]) -> WorkflowCreate:
    return WorkflowCreate.model_validate({"name": "wf", "steps": [
        {"name": n, "image": "alpine", "command": ["true"], "dependsOn": d, **fields.get(n, {})} for n, d in steps
    ]})


async def until(predicate: Callable[[], bool]) -> None:
    with anyio.fail_after(5):
        while not predicate():
            await anyio.lowlevel.checkpoint()


async def statuses(service: WorkflowService, workflow_id: str) -> dict[str, str]:
    return {s.name: s.status for s in await service.steps(workflow_id)}


async def test_ready_steps_start_together_up_to_the_concurrency_limit(engine: Engine) -> None:
    runtime = ScriptedRuntime()
    service, user = await engine(runtime, workflow_concurrency=2)
    row, _ = await service.create(user, workflow(("a", []), ("b", []), ("c", []), ("join", ["a", "b", "c"])))
    assert [s.labels["step"] for s in runtime.started] == ["a", "b"]
    runtime.finish("a")
    await until(lambda: len(runtime.started) == 3)
    assert runtime.started[2].labels == {"workflow": row.id, "step": "c"}
    runtime.finish("b")
    runtime.finish("c")
    await until(lambda: len(runtime.started) == 4)
    runtime.finish("join")
    with anyio.fail_after(5):
        while (await service.get(user, row.id)).status != "completed":
            await anyio.lowlevel.checkpoint()


async def test_outputs_are_substituted_when_the_step_starts_and_secrets_then_dropped(engine: Engine) -> None:
    runtime = ScriptedRuntime()
    service, user = await engine(runtime)
    await service.create(user, workflow(("a", []), ("b", ["a"]), b={
        "image": "registry.local/app:{{steps.a.output}}", "command": ["echo", "v={{steps.a.output}}"],
        "env": {"TOKEN": "secret-{{steps.a.output}}"},
    }))
    assert await service.workflows.secrets.run_ids() != []
    runtime.finish("a", output="v1")
    await until(lambda: len(runtime.started) == 2)
    spec = runtime.started[1]
    assert (spec.image, list(spec.command), dict(spec.env)) == ("registry.local/app:v1", ["echo", "v=v1"],
                                                               {"TOKEN": "secret-v1", "KUBEGATE_OUTPUT_A": "v1"})
    with anyio.fail_after(5):  # dropped once the runtime has the spec
        while await service.workflows.secrets.run_ids():
            await anyio.lowlevel.checkpoint()


async def test_an_output_that_makes_an_invalid_image_fails_the_step(engine: Engine) -> None:
    runtime = ScriptedRuntime()
    service, user = await engine(runtime)
    row, _ = await service.create(user, workflow(("a", []), ("b", ["a"]), ("c", ["b"]),
                                                 b={"image": "app:{{steps.a.output}}"}))
    runtime.finish("a", output="NOT A TAG!")
    with anyio.fail_after(5):
        while (await service.get(user, row.id)).status != "failed":
            await anyio.lowlevel.checkpoint()
    steps = {s.name: s for s in await service.steps(row.id)}
    assert steps["b"].status == "failed" and "not a valid reference" in (steps["b"].message or "")
    assert steps["c"].status == "skipped" and len(runtime.started) == 1


async def test_a_claimed_step_whose_run_never_began_is_lost_not_rerun(engine: Engine) -> None:
    first = ScriptedRuntime()
    service, user = await engine(first)
    row, _ = await service.create(user, workflow(("a", []), ("b", ["a"])))
    # A new gateway whose runtime never heard of a's run: the crash came between claim and start.
    after = ScriptedRuntime()  # another host: the crash came before the run was started anywhere
    service, _ = await engine(after)
    with anyio.fail_after(5):
        while (await service.get(user, row.id)).status != "failed":
            await anyio.lowlevel.checkpoint()
    assert await statuses(service, row.id) == {"a": "failed", "b": "skipped"}
    assert after.started == []


async def test_a_restarted_engine_picks_up_a_running_step_and_starts_the_rest_once(engine: Engine) -> None:
    first = ScriptedRuntime()
    service, user = await engine(first)
    row, _ = await service.create(user, workflow(("a", []), ("b", ["a"])))
    with anyio.fail_after(5):  # the first gateway recorded a's start (its dispatcher hears it a moment later)
        while (await statuses(service, row.id))["a"] != "running":
            await anyio.lowlevel.checkpoint()
    after = ScriptedRuntime(first.host)  # the same host: a's run outlived the first gateway
    service, _ = await engine(after)
    assert await statuses(service, row.id) == {"a": "running", "b": "pending"}
    after.finish("a")
    await until(lambda: len(after.host.started) == 2)
    after.finish("b")
    with anyio.fail_after(5):
        while (await service.get(user, row.id)).status != "completed":
            await anyio.lowlevel.checkpoint()
    assert [s.labels["step"] for s in first.host.started] == ["a", "b"]
    assert [s.labels["step"] for s in first.started] == ["a"] and [s.labels["step"] for s in after.started] == ["b"]


async def test_a_step_waiting_for_a_fair_share_slot_is_pending_until_its_run_starts(engine: Engine) -> None:
    runtime = ScriptedRuntime()
    service, user = await engine(runtime, fair_share={"max_active_runs_per_user": 1})
    row, _ = await service.create(user, workflow(("a", []), ("b", []), ("join", ["a", "b"])))
    await until(lambda: len(runtime.started) == 1)
    with anyio.fail_after(5):
        while (await statuses(service, row.id))["a"] != "running":
            await anyio.lowlevel.checkpoint()
    # b was handed over but waits in the queue: pending, like a queued task, with no startedAt.
    steps = {s.name: s for s in await service.steps(row.id)}
    assert {n: s.status for n, s in steps.items()} == {"a": "running", "b": "pending", "join": "pending"}
    assert steps["b"].started_at is None and steps["b"].claimed_at is not None
    assert (await service.get(user, row.id)).status == "running"
    runtime.finish("a")
    await until(lambda: len(runtime.started) == 2)
    with anyio.fail_after(5):
        while (await statuses(service, row.id))["b"] != "running":
            await anyio.lowlevel.checkpoint()
    assert [s.labels["step"] for s in runtime.started] == ["a", "b"]  # queued once, started once
    runtime.finish("b")
    await until(lambda: len(runtime.started) == 3)
    runtime.finish("join")
    with anyio.fail_after(5):
        while (await service.get(user, row.id)).status != "completed":
            await anyio.lowlevel.checkpoint()


async def test_a_workflow_whose_only_step_waits_for_a_slot_is_pending(engine: Engine) -> None:
    runtime = ScriptedRuntime()
    service, user = await engine(runtime, fair_share={"max_active_runs": 1})
    first, _ = await service.create(user, workflow(("a", [])))
    await until(lambda: len(runtime.started) == 1)
    second, _ = await service.create(user, workflow(("a", [])))
    assert (await service.get(user, second.id)).status == "pending"
    assert await statuses(service, second.id) == {"a": "pending"}
    deleted, steps = await service.delete(user, second.id)  # a queued step is dropped from the queue
    assert steps[0].status == "failed" and steps[0].reason == "cancelled"
    runtime.finish("a")
    with anyio.fail_after(5):
        while (await service.get(user, first.id)).status != "completed":
            await anyio.lowlevel.checkpoint()
    assert len(runtime.started) == 1  # the deleted workflow's step never ran


async def test_a_step_whose_end_is_heard_before_its_start_still_shows_it_ran(engine: Engine) -> None:
    # The holder of the recovery lease follows every run on the host, and may report the end of a quick run that
    # another process (a `kubegate stdio`) started before that process has recorded the start: the step went
    # from pending straight to its end. It ran, so it has a start time (and the step's logs are shown).
    runtime = ScriptedRuntime()
    service, user = await engine(runtime, fair_share={"max_active_runs_per_user": 1})
    row, _ = await service.create(user, workflow(("a", []), ("b", [])))
    await until(lambda: len(runtime.started) == 1)
    queued = next(s for s in await service.steps(row.id) if s.name != runtime.started[0].labels["step"])
    assert queued.claimed_at is not None and queued.started_at is None
    await service.on_event(RunEvent(queued.run_id, "exited", datetime.now(UTC), exit_code=0, output="done",
                                    reason="completed"))
    ended = next(s for s in await service.steps(row.id) if s.name == queued.name)
    assert (ended.status, ended.output) == ("completed", "done") and ended.started_at == ended.completed_at
    runtime.finish(runtime.started[0].labels["step"])
    with anyio.fail_after(5):
        while (await service.get(user, row.id)).status != "completed":
            await anyio.lowlevel.checkpoint()
