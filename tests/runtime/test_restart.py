"""Runs outlive the gateway: a SIGKILLed gateway loses nothing, and a new one recovers every run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from mcp_server.config import Settings
from mcp_server.runtime.base import RunSpec
from tests.runtime.conftest import READONLY_PATHS, Isolation, MakeRuntime
from tests.runtime.support import WAIT, Events, Handshake, processes_in, sh, spec, zombie_children

GATEWAY = """
import asyncio, json, sys
from pathlib import Path
from mcp_server.config import Settings
from mcp_server.runtime.base import RunSpec
from mcp_server.runtime.local import LocalRuntime

async def main(data_dir, isolation, run_id, command, readonly):
    runtime = LocalRuntime(Settings(data_dir=Path(data_dir), isolation=isolation, run_readonly_paths=readonly))
    events = runtime.events()
    await runtime.start(RunSpec(run_id, "tester", "local", json.loads(command), timeout_seconds=60))
    print((await anext(events)).kind, flush=True)
    await asyncio.Event().wait()

asyncio.run(main(*sys.argv[1:]))
"""


@asynccontextmanager
async def doomed_gateway(data_dir: Path, isolation: Isolation, run: RunSpec) -> AsyncIterator[None]:
    """A gateway in its own process that starts ``run`` and is SIGKILLed when the block ends."""
    command = json.dumps(list(run.command))
    args = [sys.executable, "-c", GATEWAY, str(data_dir), isolation, run.run_id, command, READONLY_PATHS]
    async with await anyio.open_process(args, stdout=subprocess.PIPE) as process:
        assert process.stdout is not None
        with anyio.fail_after(WAIT):
            assert (await process.stdout.receive()).strip() == b"started"
        try:
            yield
        finally:
            process.send_signal(signal.SIGKILL)
            await process.wait()


@pytest.mark.parametrize("isolation", ["bwrap", "none"])
async def test_a_run_that_ends_while_the_gateway_is_dead_is_recovered_with_its_result(
    make_runtime: MakeRuntime, data_dir: Path, handshake: Handshake, isolation: Isolation
) -> None:
    run = sh(handshake.script('echo "the answer" > "$KUBEGATE_OUTPUT"; exit 7'))
    async with doomed_gateway(data_dir, isolation, run):
        await handshake.ready()
    handshake.go()
    await _shim_ended(data_dir, run.run_id)

    runtime = make_runtime(isolation)
    events = Events(runtime)
    await runtime.recover([run])
    exited = await events.wait(run.run_id)
    assert (exited.exit_code, exited.reason, exited.output) == (7, "error", "the answer")


@pytest.mark.parametrize("isolation", ["bwrap", "none"])
async def test_a_run_still_going_at_recover_is_reattached_and_finishes_normally(
    make_runtime: MakeRuntime, data_dir: Path, handshake: Handshake, isolation: Isolation
) -> None:
    run = sh(handshake.script("echo finished"))
    async with doomed_gateway(data_dir, isolation, run):
        await handshake.ready()

    runtime = make_runtime(isolation)
    events = Events(runtime)
    await runtime.recover([run])
    handshake.go()
    exited = await events.wait(run.run_id)
    assert (exited.exit_code, exited.reason, exited.output) == (0, "completed", "finished")
    assert events.of(run.run_id) == [exited]


async def test_a_reattached_run_can_still_be_cancelled(
    make_runtime: MakeRuntime, data_dir: Path, handshake: Handshake
) -> None:
    going = sh(handshake.script())
    async with doomed_gateway(data_dir, "bwrap", going):
        await handshake.ready()
    runtime = make_runtime("bwrap")
    events = Events(runtime)
    await runtime.recover([going])
    await runtime.cancel(going.run_id)
    assert (await events.wait(going.run_id)).reason == "cancelled"


@pytest.mark.parametrize("isolation", ["bwrap", "none"])
async def test_a_run_whose_shim_vanished_is_lost_and_leaves_nothing_running(
    make_runtime: MakeRuntime, data_dir: Path, handshake: Handshake, isolation: Isolation
) -> None:
    run = sh(handshake.script())
    async with doomed_gateway(data_dir, isolation, run):
        await handshake.ready()
    pidfd = _shim_pidfd(data_dir, run.run_id)
    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    await _readable(pidfd)
    os.close(pidfd)

    runtime = make_runtime(isolation)
    events = Events(runtime)
    await runtime.recover([run, spec(["true"], run_id="never-existed")])
    exited = await events.wait(run.run_id)
    assert (exited.exit_code, exited.reason) == (None, "lost")
    assert (await events.wait("never-existed")).reason == "lost"
    await _until_no_process_in(Settings(data_dir=data_dir).runs_dir / run.run_id / "work")


async def test_a_closed_runtime_leaves_its_run_to_the_next_one_in_the_same_process(
    make_runtime: MakeRuntime, handshake: Handshake
) -> None:
    first = make_runtime("bwrap")
    run = sh(handshake.script("echo second life"))
    await first.start(run)
    await handshake.ready()
    await first.close()
    del first
    handshake.go()

    second = make_runtime("bwrap")
    events = Events(second)
    await second.recover([run])
    exited = await events.wait(run.run_id)
    assert (exited.exit_code, exited.output) == (0, "second life")
    assert zombie_children() == []


async def test_two_hundred_concurrent_runs_each_exit_exactly_once(make_runtime: MakeRuntime) -> None:
    runtime = make_runtime("bwrap")
    events = Events(runtime)
    fds_before = len(os.listdir("/proc/self/fd"))
    runs = [spec(["sh", "-c", f"sleep 1; echo {index}"]) for index in range(200)]
    for run in runs:
        await runtime.start(run)
    seen = await events.take(400, timeout=120)
    exits = {event.run_id: event for event in seen if event.kind == "exited"}
    assert len(exits) == 200 and sorted(event.kind for event in seen).count("started") == 200
    assert all(exits[run.run_id].output == str(index) for index, run in enumerate(runs))
    assert all(event.exit_code == 0 for event in exits.values())
    assert zombie_children() == []
    assert len(os.listdir("/proc/self/fd")) <= fds_before


def _shim_pidfd(data_dir: Path, run_id: str) -> int:
    pid = int((Settings(data_dir=data_dir).runs_dir / run_id / "shim.pid").read_text().split()[0])
    return os.pidfd_open(pid)


async def _shim_ended(data_dir: Path, run_id: str) -> None:
    pidfd = _shim_pidfd(data_dir, run_id)
    try:
        await _readable(pidfd)
    finally:
        os.close(pidfd)


async def _readable(fd: int) -> None:
    with anyio.fail_after(WAIT):
        await anyio.wait_readable(fd)


async def _until_no_process_in(work: Path) -> None:
    """The kernel kills a dead shim's sandbox (--die-with-parent / PDEATHSIG) asynchronously."""
    for pid in processes_in(work):
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            await _readable(pidfd)
        finally:
            os.close(pidfd)
    assert processes_in(work) == []
