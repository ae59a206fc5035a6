"""LocalRuntime with real processes, real bubblewrap and real files; each test runs with and without bwrap."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import anyio
import pytest

from mcp_server.config import Settings
from mcp_server.errors import Unavailable
from mcp_server.runtime.base import OUTPUT_LIMIT
from mcp_server.runtime.local import LocalRuntime
from tests.runtime.conftest import Isolation, MakeRuntime
from tests.runtime.support import WAIT, Events, Handshake, processes_in, sh, spec


async def test_success_reports_started_then_exit_code_zero_and_output_file(runtime: LocalRuntime) -> None:
    events = Events(runtime)
    run = sh('echo "the log"; printf "result value\\n" > "$KUBEGATE_OUTPUT"')
    await runtime.start(run)
    exited = await events.wait(run.run_id)
    assert [event.kind for event in events.of(run.run_id)] == ["started", "exited"]
    assert (exited.exit_code, exited.reason, exited.output) == (0, "completed", "result value")
    assert runtime.read_logs(run.run_id, tail=1024) == "the log\n"


async def test_output_falls_back_to_last_non_empty_stdout_line(runtime: LocalRuntime) -> None:
    events = Events(runtime)
    run = sh("echo first; echo second; echo; echo oops >&2; echo")
    await runtime.start(run)
    assert (await events.wait(run.run_id)).output == "oops"


async def test_output_file_is_capped(runtime: LocalRuntime) -> None:
    events = Events(runtime)
    run = spec([sys.executable, "-c", "import os; open(os.environ['KUBEGATE_OUTPUT'], 'w').write('é' * 3000)"])
    await runtime.start(run)
    output = (await events.wait(run.run_id)).output
    assert output is not None and len(output.encode()) <= OUTPUT_LIMIT and set(output) == {"é"}


async def test_output_symlink_is_not_followed(runtime: LocalRuntime) -> None:
    events = Events(runtime)
    run = sh('ln -s /etc/passwd "$KUBEGATE_OUTPUT"; echo fallback')
    await runtime.start(run)
    assert (await events.wait(run.run_id)).output == "fallback"


async def test_non_zero_exit_is_an_error_with_its_code(runtime: LocalRuntime) -> None:
    events = Events(runtime)
    run = sh("echo failing; exit 3")
    await runtime.start(run)
    exited = await events.wait(run.run_id)
    assert (exited.exit_code, exited.reason, exited.output) == (3, "error", "failing")


async def test_unknown_command_exits_127(runtime: LocalRuntime) -> None:
    events = Events(runtime)
    run = spec(["no-such-command-kubegate"])
    await runtime.start(run)
    exited = await events.wait(run.run_id)
    assert (exited.exit_code, exited.reason) == (127, "error")


async def test_env_is_the_spec_env_plus_a_minimal_base(
    runtime: LocalRuntime, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_SECRET", "must-not-leak")
    events = Events(runtime)
    run = spec(["env"], env={"GREETING": "hi"})
    await runtime.start(run)
    await events.wait(run.run_id)
    env = dict(line.split("=", 1) for line in runtime.read_logs(run.run_id, tail=65536).splitlines())
    work = "/work" if runtime.isolated else str(Settings(data_dir=data_dir).runs_dir / run.run_id / "work")
    assert env["GREETING"] == "hi" and "GATEWAY_SECRET" not in env
    assert env["HOME"] == work and env["KUBEGATE_OUTPUT"].startswith(f"{work}/")
    assert env["LANG"] == "C.UTF-8" and "/usr/bin" in env["PATH"].split(":")


async def test_timeout_sends_term_then_kill_to_a_task_that_ignores_term(runtime: LocalRuntime, data_dir: Path) -> None:
    events = Events(runtime)
    run = sh('trap "" TERM; sleep 30 & sleep 30', timeout_seconds=0.3)
    began = time.monotonic()
    await runtime.start(run)
    exited = await events.wait(run.run_id)
    assert (exited.exit_code, exited.reason) == (137, "timeout")
    assert time.monotonic() - began >= 0.3 + 0.5  # the grace was granted before SIGKILL
    assert processes_in(Settings(data_dir=data_dir).runs_dir / run.run_id / "work") == []


async def test_timeout_lets_a_task_handle_term(runtime: LocalRuntime) -> None:
    events = Events(runtime)
    run = sh('trap "echo cleaning up; exit 5" TERM; sleep 30 & wait', timeout_seconds=0.3)
    await runtime.start(run)
    exited = await events.wait(run.run_id)
    assert (exited.exit_code, exited.reason, exited.output) == (5, "timeout", "cleaning up")


async def test_cancel_stops_a_running_task(runtime: LocalRuntime, handshake: Handshake) -> None:
    events = Events(runtime)
    run = sh(handshake.script("echo never"))
    await runtime.start(run)
    await handshake.ready()
    await runtime.cancel(run.run_id)
    await runtime.cancel(run.run_id)
    exited = await events.wait(run.run_id)
    assert (exited.exit_code, exited.reason) == (143, "cancelled")
    await runtime.cancel(run.run_id)
    await runtime.cancel("never-started")
    assert [event.kind for event in events.of(run.run_id)] == ["started", "exited"]


async def test_cancel_right_after_start_still_reports_cancelled(runtime: LocalRuntime) -> None:
    events = Events(runtime)
    run = spec(["sleep", "30"])
    await runtime.start(run)
    await runtime.cancel(run.run_id)
    assert (await events.wait(run.run_id)).reason == "cancelled"


async def test_a_run_leaves_no_process_behind(runtime: LocalRuntime, data_dir: Path) -> None:
    events = Events(runtime)
    run = sh("sleep 30 & echo left a child")
    await runtime.start(run)
    exited = await events.wait(run.run_id)
    assert (exited.exit_code, exited.output) == (0, "left a child")
    assert processes_in(Settings(data_dir=data_dir).runs_dir / run.run_id / "work") == []


async def test_remove_stops_the_run_and_deletes_its_files(runtime: LocalRuntime, data_dir: Path) -> None:
    events = Events(runtime)
    run = spec(["sleep", "30"])
    await runtime.start(run)
    await runtime.remove(run.run_id)
    assert (await events.wait(run.run_id)).reason == "cancelled"
    assert not (Settings(data_dir=data_dir).runs_dir / run.run_id).exists()
    assert runtime.read_logs(run.run_id, tail=10) == ""
    await runtime.remove(run.run_id)


async def test_logs_tail_keeps_the_last_bytes_without_splitting_characters(runtime: LocalRuntime) -> None:
    events = Events(runtime)
    run = sh("echo début; echo fin")
    await runtime.start(run)
    await events.wait(run.run_id)
    assert runtime.read_logs(run.run_id, tail=4) == "fin\n"
    assert runtime.read_logs(run.run_id, tail=len("but\nfin\n")) == "but\nfin\n"
    assert runtime.read_logs(run.run_id, tail=len("ébut\nfin\n") - 1) == "but\nfin\n"
    assert runtime.read_logs(run.run_id, tail=1000) == "début\nfin\n"
    assert runtime.read_logs("../../etc", tail=100) == ""


async def test_close_ends_the_event_stream_and_leaves_runs_going(
    make_runtime: MakeRuntime, data_dir: Path, handshake: Handshake
) -> None:
    runtime = make_runtime("none")
    run = sh(handshake.script())
    await runtime.start(run)
    await handshake.ready()
    await runtime.close()
    with anyio.fail_after(WAIT):
        assert [event.kind async for event in runtime.events()] == ["started"]
    assert processes_in(Settings(data_dir=data_dir).runs_dir / run.run_id / "work") != []


def test_forced_bwrap_without_bubblewrap_fails_at_construction(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(data_dir))
    with pytest.raises(Unavailable, match="bubblewrap"):
        LocalRuntime(Settings(data_dir=data_dir, isolation="bwrap"))
    assert not LocalRuntime(Settings(data_dir=data_dir, isolation="auto")).isolated


async def test_rlimits_from_the_size_apply_to_the_task(make_runtime: MakeRuntime, isolation: Isolation) -> None:
    runtime = make_runtime(isolation)
    events = Events(runtime)
    limits = spec(["cat", "/proc/self/limits"], size="small", timeout_seconds=60)
    await runtime.start(limits)
    await events.wait(limits.run_id)
    lines = runtime.read_logs(limits.run_id, tail=8192).splitlines()
    table = {line[:26].strip(): line[26:].split()[:2] for line in lines}
    cgroups = runtime.containment["limits"].startswith("cgroup")
    assert table["Max cpu time"] == ["61", "66"]
    assert table["Max file size"] == [str(1 << 30)] * 2
    if not cgroups:  # with cgroups, memory and processes are the cgroup's to bound
        assert table["Max address space"] == [str(512 * 1024 * 1024)] * 2
        if isolation == "bwrap":
            assert table["Max processes"] == ["256", "256"]

    hog = spec([sys.executable, "-c", "b = bytearray(1024 ** 3); b[::4096] = b'x' * len(b[::4096])"], size="small")
    await runtime.start(hog)
    exited = await events.wait(hog.run_id)
    if cgroups:
        assert (exited.exit_code, exited.reason) == (137, "memory_limit")
        assert exited.message is not None and "memory" in exited.message
    else:
        assert exited.exit_code == 1 and "MemoryError" in runtime.read_logs(hog.run_id, tail=4096)


async def test_a_run_past_its_disk_allowance_fails_with_a_reason_that_says_so(data_dir: Path) -> None:
    runtime = LocalRuntime(Settings(data_dir=data_dir, isolation="auto", run_max_file_bytes=4096))
    events = Events(runtime)
    run = sh("echo writing; head -c 100000 /dev/zero > big")
    await runtime.start(run)
    exited = await events.wait(run.run_id)
    assert (exited.exit_code, exited.reason) == (128 + signal.SIGXFSZ, "disk_limit")
    assert exited.message is not None and "disk allowance" in exited.message
    assert os.path.getsize(Settings(data_dir=data_dir).runs_dir / run.run_id / "work" / "big") <= 4096
    await runtime.close()

