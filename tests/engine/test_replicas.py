"""Replicas on one PostgreSQL database, in one process: the leader lock, the hand-off of runs, and a
leader that stops acting the moment its lock's connection breaks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from mcp_server.config import Settings
from mcp_server.engine.dispatcher import Dispatcher
from mcp_server.engine.replicas import CHANGES, RUNS, HandOff, Replica
from mcp_server.runtime.base import RunSpec
from mcp_server.store.coordination import Lease, PgCoordination
from mcp_server.store.postgres import PostgresDatabase
from mcp_server.store.run_queue import RunQueue
from tests.pg import PgCluster
from tests.runtime.double import ScriptedHost, ScriptedRuntime

WAIT = 20.0
Made = tuple[Replica, ScriptedRuntime, list[str]]


@pytest.fixture
async def database(pg_cluster: PgCluster) -> AsyncIterator[PostgresDatabase]:
    db = await PostgresDatabase.open(pg_cluster.create_database())
    yield db
    await db.close()


@pytest.fixture
async def make(database: PostgresDatabase, tmp_path: Path) -> AsyncIterator[Callable[[], Awaitable[Made]]]:
    made: list[tuple[Replica, Dispatcher]] = []
    host = ScriptedHost()

    async def replica() -> Made:
        inner = ScriptedRuntime(host)
        coordination = PgCoordination(database)
        runtime = HandOff(inner, RunQueue(database), Settings(data_dir=tmp_path), coordination.channel(RUNS, CHANGES))
        dispatcher = Dispatcher(runtime)
        lost: list[str] = []

        async def on_lead() -> None:
            await runtime.recover([])

        one = Replica(coordination.lead, runtime, dispatcher, on_lead=on_lead, on_lost=lambda: lost.append("lost"))
        dispatcher.start()
        one.start()
        made.append((one, dispatcher))
        return one, inner, lost

    yield replica
    for one, dispatcher in made:
        await one.close()
        await dispatcher.stop()
    await host.close()


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not check():
            await asyncio.sleep(0.01)


def spec(run_id: str) -> RunSpec:
    return RunSpec(run_id=run_id, owner="user_1", image="alpine", command=["true"])


async def test_one_leads_and_a_run_started_on_a_follower_starts_on_the_leader(make: Callable[[], Awaitable[Made]],
                                                                              database: PostgresDatabase) -> None:
    first, first_runtime, _ = await make()
    await until(lambda: first.leading)
    second, second_runtime, _ = await make()
    await second.runtime.start(spec("task_handed"))  # the follower stores it and says so
    await until(lambda: [s.run_id for s in first_runtime.started] == ["task_handed"])
    assert not second.leading and second_runtime.started == []
    async with asyncio.timeout(WAIT):  # adopted and started: out of the queue
        while await database.fetch_all("SELECT run_id FROM run_queue"):
            await asyncio.sleep(0.01)


async def test_a_change_on_one_replica_wakes_a_waiter_on_another(make: Callable[[], Awaitable[Made]]) -> None:
    first, _, _ = await make()
    second, _, _ = await make()
    await until(lambda: first.leading or second.leading)
    waiting = asyncio.ensure_future(second.dispatcher.wait_change("task_x", WAIT))
    await asyncio.sleep(0)  # the waiter is registered
    while not waiting.done():  # the LISTEN connection may still be starting: say it again until heard
        first.dispatcher.changed("task_x")
        await asyncio.wait({waiting}, timeout=0.2)
    assert waiting.result() is True


async def test_a_leader_whose_lock_connection_breaks_stops_and_another_takes_over(
        make: Callable[[], Awaitable[Made]], database: PostgresDatabase) -> None:
    first, _, first_lost = await make()
    await until(lambda: first.leading)
    second, second_runtime, _ = await make()
    assert first.lease is not None
    assert isinstance(first.lease, Lease)
    pid = first.lease._conn.info.backend_pid
    await database.fetch_one("SELECT pg_terminate_backend(?)", (pid,))  # the server ends the leader's session
    await until(lambda: first_lost == ["lost"])
    assert not first.leading  # it stopped acting at once: starts now go to the store
    await until(lambda: second.leading)
    await first.runtime.start(spec("task_after"))
    await until(lambda: [s.run_id for s in second_runtime.started] == ["task_after"])
