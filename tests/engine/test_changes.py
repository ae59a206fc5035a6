"""The change feed behind /api/events: coalescing per id, deletes kept, a bounded backlog."""

from __future__ import annotations

from mcp_server.engine.changes import Change, ChangeFeed


async def test_changes_to_one_id_coalesce_and_a_delete_is_not_lost() -> None:
    feed = ChangeFeed()
    with feed.listen() as listener:
        feed.publish("task_a")
        feed.publish("task_b")
        feed.publish("task_a")
        feed.publish("task_b", removed_for="user_1")
        assert await listener.next(1) == [Change("task_a"), Change("task_b", "user_1")]
        assert await listener.next(0.01) == []  # quiet: the caller sends a keep-alive


async def test_a_listener_that_falls_behind_is_told_to_resync() -> None:
    feed = ChangeFeed(capacity=3)
    with feed.listen() as listener:
        for n in range(5):
            feed.publish(f"task_{n}")
        assert await listener.next(1) is None
        feed.publish("task_9")
        assert await listener.next(1) == [Change("task_9")]


async def test_nobody_hears_after_leaving() -> None:
    feed = ChangeFeed()
    with feed.listen() as listener:
        pass
    feed.publish("task_a")
    assert await listener.next(0.01) == []
