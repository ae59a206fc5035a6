"""Fair shares over a scripted runtime: caps, order, another user's slot, cancels and restarts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from mcp_server.config import Settings
from mcp_server.engine.queue import FairShare
from mcp_server.runtime.base import RunEvent, RunSpec
from mcp_server.store.db import Database
from mcp_server.store.run_queue import RunQueue
from mcp_server.store.stores import open_database
from tests.runtime.double import ScriptedHost, ScriptedRuntime


@pytest.fixture
async def db(tmp_path: Path, database_url: str | None) -> AsyncIterator[Database]:
    database = await open_database(tmp_path / "kubegate.db", database_url)
    yield database
    await database.close()


def _spec(run_id: str, owner: str) -> RunSpec:
    return RunSpec(run_id=run_id, owner=owner, image="x", command=["true"], env={"TOKEN": "secret"})


class Share:
    """A FairShare on a scripted runtime, with its event stream pulled in the background."""

    def __init__(self, db: Database, tmp_path: Path, host: ScriptedHost | None = None, **caps: int) -> None:
        self.inner = ScriptedRuntime(host)
        self.share = FairShare(self.inner, RunQueue(db), Settings(data_dir=tmp_path, **caps))  # type: ignore[arg-type]
        self.seen: list[RunEvent] = []

    async def pull(self) -> None:
        async for event in self.share.events():
            self.seen.append(event)

    def started(self) -> list[str]:
        return [spec.run_id for spec in self.inner.started]

    def exit(self, run_id: str) -> None:
        self.inner.host.finish(run_id)  # exit code 0, no output: "completed"

    async def until_started(self, count: int) -> None:
        with anyio.fail_after(5):
            while len(self.inner.started) < count:
                await anyio.lowlevel.checkpoint()


async def test_runs_beyond_the_caps_wait_and_start_in_order_as_slots_free(db: Database, tmp_path: Path) -> None:
    share = Share(db, tmp_path, max_active_runs_per_user=2, max_active_runs=3)
    async with anyio.create_task_group() as tg:
        tg.start_soon(share.pull)
        for i in range(6):
            await share.share.start(_spec(f"a{i}", "alice"))
        await share.share.start(_spec("b0", "bob"))
        await share.until_started(3)
        assert share.started() == ["a0", "a1", "b0"]  # alice is at her cap; bob still got a slot
        for count, ended in enumerate(["a0", "a1", "a2", "a3"], start=4):
            share.exit(ended)  # each exit frees one of alice's slots: her next run takes it
            await share.until_started(count)
        assert share.started() == ["a0", "a1", "b0", "a2", "a3", "a4", "a5"]
        tg.cancel_scope.cancel()


async def test_a_queued_run_can_be_cancelled_and_is_never_started(db: Database, tmp_path: Path) -> None:
    share = Share(db, tmp_path, max_active_runs_per_user=1, max_active_runs=10)
    async with anyio.create_task_group() as tg:
        tg.start_soon(share.pull)
        await share.share.start(_spec("a0", "alice"))
        await share.share.start(_spec("a1", "alice"))
        await share.share.cancel("a1")
        share.exit("a0")
        with anyio.fail_after(5):
            while not any(e.run_id == "a0" and e.kind == "exited" for e in share.seen):
                await anyio.lowlevel.checkpoint()
        assert share.started() == ["a0"]
        assert [(e.run_id, e.reason) for e in share.seen if e.kind == "exited"][0] == ("a1", "cancelled")
        assert not await db.fetch_all("SELECT * FROM run_queue")
        tg.cancel_scope.cancel()


async def test_a_restarted_gateway_starts_what_was_waiting(db: Database, tmp_path: Path) -> None:
    first = Share(db, tmp_path, max_active_runs_per_user=1, max_active_runs=10)
    await first.share.start(_spec("a0", "alice"))
    await first.share.start(_spec("a1", "alice"))
    queued = await db.fetch_all("SELECT spec FROM run_queue")
    assert len(queued) == 1 and "secret" in queued[0]["spec"]  # kept until it starts, like run_secrets

    # The same host: a0 is still running after the restart.
    second = Share(db, tmp_path, first.inner.host, max_active_runs_per_user=1, max_active_runs=10)
    async with anyio.create_task_group() as tg:
        tg.start_soon(second.pull)
        await second.share.recover([_spec("a0", "alice"), _spec("a1", "alice")])
        assert second.started() == []  # a0 holds alice's slot
        second.exit("a0")
        await second.until_started(1)
        assert second.started() == ["a1"] and second.inner.started[0].env == {"TOKEN": "secret"}
        await until_queue_empty(db)  # the row goes once the start is through, a step after it
        tg.cancel_scope.cancel()


async def until_queue_empty(db: Database) -> None:
    """The run queue empties (bounded): a started run's row is removed after its start returns."""
    with anyio.fail_after(10):
        while await db.fetch_all("SELECT * FROM run_queue"):
            await anyio.sleep(0.01)



class DiesInStart(ScriptedRuntime):
    """A leader that dies inside the start of run ``dies_on``: ``after`` the run took effect on the host, or before."""

    def __init__(self, host: ScriptedHost, dies_on: str, *, after: bool) -> None:
        super().__init__(host)
        self.dies_on, self.after = dies_on, after
        self.reached = anyio.Event()

    async def start(self, spec: RunSpec) -> None:
        if spec.run_id != self.dies_on or self.after:
            await super().start(spec)  # the Job exists, the supervisor runs
        if spec.run_id == self.dies_on:
            self.reached.set()
            await anyio.sleep_forever()  # the process is gone: nothing after this line ever runs


async def _leader_dies_starting_a1(db: Database, tmp_path: Path, host: ScriptedHost, *, after: bool) -> None:
    """a1 waits behind alice's a0; a0 ends, so the leader takes a1 from the queue to start it, and dies there."""
    dying = DiesInStart(host, "a1", after=after)
    share = FairShare(dying, RunQueue(db), Settings(data_dir=tmp_path, max_active_runs_per_user=1))  # type: ignore[arg-type]
    async with anyio.create_task_group() as tg:
        tg.start_soon(_drain, share)
        await share.start(_spec("a0", "alice"))
        await share.start(_spec("a1", "alice"))
        host.finish("a0")
        with anyio.fail_after(5):
            await dying.reached.wait()
        tg.cancel_scope.cancel()
    await share.close()  # the process is gone: its tasks end where they stood, the host's runs live on


async def _drain(share: FairShare) -> None:
    async for _ in share.events():
        pass


async def _exited(share: Share, run_id: str) -> None:
    """Until ``share`` has seen ``run_id`` end (bounded)."""
    with anyio.fail_after(5):
        while not any(e.run_id == run_id and e.kind == "exited" for e in share.seen):
            await anyio.sleep(0.01)


async def test_a_leader_dying_after_starting_a_queued_run_never_gets_it_started_twice(
        db: Database, tmp_path: Path) -> None:
    host = ScriptedHost()
    await _leader_dies_starting_a1(db, tmp_path, host, after=True)
    # The next leader, on the same host, with what the store still calls active.
    second = Share(db, tmp_path, host, max_active_runs_per_user=1)
    async with anyio.create_task_group() as tg:
        tg.start_soon(second.pull)
        await second.share.recover([_spec("a1", "alice")])
        host.finish("a1", exit_code=3)
        await _exited(second, "a1")
        ended = [e for e in second.seen if e.run_id == "a1" and e.kind == "exited"]
        assert [s.run_id for s in host.started].count("a1") == 1  # one start, by the leader that died
        assert second.started() == []  # re-attached, not started again
        assert [(e.exit_code, e.reason) for e in ended] == [(3, "error")]  # its own end, not a refused second start
        tg.cancel_scope.cancel()
    await host.close()


async def test_a_leader_dying_before_a_dequeued_run_took_effect_leaves_it_lost_not_doubled(
        db: Database, tmp_path: Path) -> None:
    host = ScriptedHost()
    await _leader_dies_starting_a1(db, tmp_path, host, after=False)
    second = Share(db, tmp_path, host, max_active_runs_per_user=1)
    async with anyio.create_task_group() as tg:
        tg.start_soon(second.pull)
        await second.share.recover([_spec("a1", "alice")])
        await _exited(second, "a1")
        assert [e.reason for e in second.seen if e.run_id == "a1"] == ["lost"]  # said, never silently dropped
        assert second.started() == [] and await db.fetch_all("SELECT * FROM run_queue") == []
        tg.cancel_scope.cancel()
    await host.close()
