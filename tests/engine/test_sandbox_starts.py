"""Sandbox starts handed from a follower to the leader, on a real store (SQLite and PostgreSQL): each is
made once by one leader, a failure is written to the sandbox, a start deleted or expired before any
leader took it is never made, and a takeover's recovery does not take a waiting start for a lost one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest

from mcp_server.config import Settings
from mcp_server.engine.dispatcher import Dispatcher
from mcp_server.engine.sandboxes import SandboxService
from mcp_server.errors import Unavailable
from mcp_server.models.sandboxes import SandboxCreate
from mcp_server.runtime.base import Endpoint, ExecRequest, ExecResult, OutputSink, RunSpec, WorkloadStats
from mcp_server.store.stores import Stores, open_stores
from tests.runtime.double import ScriptedHost, ScriptedRuntime

if TYPE_CHECKING:
    from mcp_server.engine.replicas import HandOff


class Relay:
    """The part of ``HandOff`` a sandbox service uses: whether it leads, and the notice to the leader."""

    def __init__(self, leading: bool) -> None:
        self.leading = leading
        self.told: list[str] = []
        self.adopt: Callable[[], Awaitable[None]] | None = None

    def take_over(self, verb: str, adopt: Callable[[], Awaitable[None]]) -> None:
        self.adopt = adopt

    async def hand_over(self, verb: str) -> None:
        self.told.append(verb)


class Workloads:
    """Starts a sandbox as a scripted run on the shared host (or refuses, like a runtime without room)."""

    def __init__(self, runtime: ScriptedRuntime) -> None:
        self.runtime = runtime
        self.refusal: str | None = None

    async def start(self, spec: RunSpec, *, port: int) -> None:
        if self.refusal is not None:
            raise Unavailable(self.refusal)
        await self.runtime.start(spec)

    async def exec(self, run_id: str, request: ExecRequest, sink: OutputSink | None = None) -> ExecResult:
        raise AssertionError("not used here")

    async def read_file(self, run_id: str, path: str, *, limit: int) -> bytes:
        raise AssertionError("not used here")

    async def write_file(self, run_id: str, path: str, data: bytes) -> None:
        raise AssertionError("not used here")

    async def extend(self, run_id: str, deadline: datetime) -> None:
        raise AssertionError("not used here")

    def endpoint(self, run_id: str, *, owner: str | None = None) -> Endpoint:
        raise AssertionError("not used here")

    async def stats(self, run_id: str) -> WorkloadStats:
        raise AssertionError("not used here")


class SandboxRuntime(ScriptedRuntime):
    def __init__(self, host: ScriptedHost) -> None:
        super().__init__(host)
        self.workloads = Workloads(self)
        self.recovered: list[str] = []

    async def recover(self, active: Sequence[RunSpec]) -> None:
        self.recovered += [spec.run_id for spec in active]
        await super().recover(active)


Replica = tuple[SandboxService, SandboxRuntime, Relay]


@pytest.fixture
async def stores(tmp_path: Path, database_url: str | None) -> AsyncIterator[Stores]:
    opened = await open_stores(tmp_path / "kubegate.db", database_url)
    yield opened
    await opened.close()


@pytest.fixture
async def replica(stores: Stores, tmp_path: Path) -> AsyncIterator[Callable[[bool], Replica]]:
    host = ScriptedHost()
    dispatchers: list[Dispatcher] = []

    def make(leading: bool) -> Replica:
        runtime = SandboxRuntime(host)
        dispatcher = Dispatcher(runtime)
        dispatcher.start()
        dispatchers.append(dispatcher)
        service = SandboxService(stores.sandboxes, runtime, dispatcher, Settings(data_dir=tmp_path))
        relay = Relay(leading)
        service.starter.join(cast("HandOff", relay))
        return service, runtime, relay

    yield make
    for dispatcher in dispatchers:
        await dispatcher.stop()
    await host.close()


async def _user(stores: Stores) -> str:
    return (await stores.users.ensure("sandboxer@example.test")).id


async def test_a_follower_hands_the_start_over_and_one_leader_makes_it_once(
        stores: Stores, replica: Callable[[bool], Replica]) -> None:
    follower, follower_runtime, told = replica(False)
    user = await _user(stores)
    record, password = await follower.create(user, SandboxCreate(name="web", image="ubuntu:22.04",
                                                                 env={"TOKEN": "t0p"}))
    assert told.told == ["sandboxes"] and follower_runtime.started == []
    assert (await stores.sandboxes.by_id(record.id)).status == "provisioning"  # type: ignore[union-attr]

    leaders = [replica(True) for _ in range(2)]  # an old and a new leader racing: one makes it
    await asyncio.gather(*(service.starter.adopt() for service, _, _ in leaders))
    started = [spec for _, runtime, _ in leaders for spec in runtime.started]
    assert [spec.run_id for spec in started] == [record.id]
    assert started[0].env["KUBEGATE_SANDBOX_PASSWORD"] == password and started[0].env["TOKEN"] == "t0p"
    assert await stores.sandboxes.waiting_starts() == []  # the password is no longer at rest


async def test_a_start_the_leader_cannot_make_is_written_to_the_sandbox(
        stores: Stores, replica: Callable[[bool], Replica]) -> None:
    follower, _, _ = replica(False)
    leader, runtime, _ = replica(True)
    runtime.workloads.refusal = "no room on this node"
    record, _ = await follower.create(await _user(stores), SandboxCreate(name="web", image="ubuntu:22.04"))
    await leader.starter.adopt()
    ended = await stores.sandboxes.by_id(record.id)
    assert ended is not None and (ended.status, ended.reason) == ("failed", "error")
    assert ended.message == "could not start: no room on this node"
    assert await stores.sandboxes.waiting_starts() == []


async def test_a_start_deleted_or_expired_before_a_leader_took_it_is_never_made(
        stores: Stores, replica: Callable[[bool], Replica]) -> None:
    follower, _, _ = replica(False)
    user = await _user(stores)
    deleted, _ = await follower.create(user, SandboxCreate(name="gone", image="ubuntu:22.04"))
    expired, _ = await follower.create(user, SandboxCreate(name="late", image="ubuntu:22.04"))
    await follower.delete(user, deleted.id)
    await stores.sandboxes.set_expiry(expired.id, "2020-01-01T00:00:00.000000Z")
    leader, runtime, _ = replica(True)
    await leader.starter.adopt()
    assert runtime.started == []
    assert await stores.sandboxes.by_id(deleted.id) is None
    ended = await stores.sandboxes.by_id(expired.id)
    assert ended is not None and (ended.status, ended.reason) == ("terminated", "timeout")


async def test_a_takeover_recovers_the_started_sandboxes_and_starts_the_waiting_ones(
        stores: Stores, replica: Callable[[bool], Replica]) -> None:
    old_leader, _, _ = replica(True)
    user = await _user(stores)
    running, _ = await old_leader.create(user, SandboxCreate(name="running", image="ubuntu:22.04"))
    follower, _, _ = replica(False)
    waiting, _ = await follower.create(user, SandboxCreate(name="waiting", image="ubuntu:22.04"))

    new_leader, runtime, _ = replica(True)
    await new_leader.recover()
    assert runtime.recovered == [running.id]  # the waiting one is no lost run: it is started instead
    assert [spec.run_id for spec in runtime.started] == [waiting.id]
    for sandbox in (running, waiting):
        assert (await stores.sandboxes.by_id(sandbox.id)).status == "provisioning"  # type: ignore[union-attr]
