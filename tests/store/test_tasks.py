"""The task repository: one ACTIVE vocabulary, conditional endings, and the one RunSpec builder."""

from __future__ import annotations

from mcp_server.store.stores import Stores
from mcp_server.store.tasks import NewTask


async def test_an_ending_is_recorded_once_and_active_tasks_become_their_run_specs(stores: Stores) -> None:
    user = (await stores.users.ensure("t@example.test")).id
    task = await stores.tasks.insert(NewTask(
        id="task_1", user_id=user, name="t", image="alpine", command=("sh", "-c", "true"), env_keys=("A",),
        timeout_seconds=30, size="medium", network=True, created_at="2026-01-01T00:00:00.000000Z"))
    spec = task.spec({"A": "secret"})
    assert (spec.run_id, spec.owner, list(spec.command), dict(spec.env), spec.size, spec.network,
            dict(spec.labels)) == ("task_1", user, ["sh", "-c", "true"], {"A": "secret"}, "medium", True,
                                   {"task": "task_1"})
    assert [t.id for t in await stores.tasks.active()] == ["task_1"]
    at = "2026-01-01T00:01:00.000000Z"
    await stores.tasks.ended("task_1", status="failed", reason="error", at=at, message="could not start: x",
                             ran=False)
    await stores.tasks.ended("task_1", status="completed", reason="completed", exit_code=0, at=at)  # too late
    stored = await stores.tasks.get(user, "task_1")
    assert stored is not None and (stored.status, stored.message, stored.started_at) == (
        "failed", "could not start: x", None)
    assert await stores.tasks.active() == [] and await stores.tasks.get("user_other", "task_1") is None
