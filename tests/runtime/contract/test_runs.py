"""The Runtime contract for runs: what the engine relies on, checked on every implementation.

Each test runs on ``LocalRuntime`` (real bubblewrap), ``KubernetesRuntime`` (the fake cluster)
and the scripted double; see ``conftest.py``. What only one runtime does (isolation, Jobs and
Secrets, shims) is tested next to it, in ``tests/runtime`` and ``tests/k8s``.
"""

from __future__ import annotations

import pytest

from mcp_server.errors import Conflict
from mcp_server.runtime.base import Runtime
from tests.runtime.contract.conftest import Harness


async def test_the_runtime_implements_the_protocol(harness: Harness) -> None:
    runtime = harness.runtime()
    assert isinstance(runtime, Runtime)
    assert runtime.name in ("local", "kubernetes", "scripted")


async def test_a_run_says_started_then_exited_with_its_output_file_and_logs(harness: Harness) -> None:
    runtime = harness.runtime()
    events = harness.events(runtime)
    run = harness.run(logs="the log\n", output="the answer")
    await runtime.start(run)
    exited = await events.wait(run.run_id)
    assert [event.kind for event in events.of(run.run_id)] == ["started", "exited"]
    assert (exited.exit_code, exited.reason, exited.output) == (0, "completed", "the answer")
    assert runtime.read_logs(run.run_id, tail=1000) == "the log\n"


async def test_without_an_output_file_the_output_is_the_last_non_empty_log_line(harness: Harness) -> None:
    runtime = harness.runtime()
    events = harness.events(runtime)
    run = harness.run(logs="first\nlast\n\n")
    await runtime.start(run)
    assert (await events.wait(run.run_id)).output == "last"


async def test_a_non_zero_exit_is_an_error_that_names_its_code(harness: Harness) -> None:
    runtime = harness.runtime()
    events = harness.events(runtime)
    run = harness.run(logs="broken\n", exit_code=3)
    await runtime.start(run)
    exited = await events.wait(run.run_id)
    assert (exited.reason, exited.exit_code, exited.output) == ("error", 3, "broken")
    assert exited.message is not None and "code 3" in exited.message


async def test_a_run_past_its_deadline_is_stopped_with_sigterm_as_a_timeout(harness: Harness) -> None:
    runtime = harness.runtime()
    events = harness.events(runtime)
    gate = harness.gate()
    # 3 s: on Kubernetes the deadline counts from the Job's start, before a loaded cluster runs its Pod.
    run = harness.run(gate=gate, timeout_seconds=3)
    await runtime.start(run)
    exited = await events.wait(run.run_id)
    assert (exited.reason, exited.exit_code) == ("timeout", 143)


async def test_cancel_ends_a_running_run_with_exactly_one_exited(harness: Harness) -> None:
    runtime = harness.runtime()
    events = harness.events(runtime)
    gate = harness.gate()
    run = harness.run(gate=gate)
    await runtime.start(run)
    await gate.ready()
    await events.wait(run.run_id, "started")
    await runtime.cancel(run.run_id)
    await runtime.cancel(run.run_id)
    assert (await events.wait(run.run_id)).reason == "cancelled"
    await runtime.cancel(run.run_id)
    await runtime.cancel("task_never_started")
    # A later run's exit bounds the wait for a duplicate: the cancelled run's events all came before it.
    later = harness.run(logs="later\n")
    await runtime.start(later)
    await events.wait(later.run_id)
    assert [event.kind for event in events.of(run.run_id)] == ["started", "exited"]


async def test_starting_a_run_twice_is_a_conflict_and_the_first_one_goes_on(harness: Harness) -> None:
    runtime = harness.runtime()
    events = harness.events(runtime)
    gate = harness.gate()
    run = harness.run(output="first", gate=gate)
    await runtime.start(run)
    await gate.ready()
    with pytest.raises(Conflict):
        await runtime.start(run)
    gate.go()
    exited = await events.wait(run.run_id)
    assert (exited.reason, exited.output) == ("completed", "first")
    assert [event.kind for event in events.of(run.run_id)] == ["started", "exited"]


async def test_remove_deletes_the_logs_and_is_idempotent(harness: Harness) -> None:
    runtime = harness.runtime()
    events = harness.events(runtime)
    run = harness.run(logs="bye\n")
    await runtime.start(run)
    await events.wait(run.run_id)
    assert runtime.read_logs(run.run_id, tail=100) == "bye\n"
    await runtime.remove(run.run_id)
    assert runtime.read_logs(run.run_id, tail=100) == ""
    await runtime.remove(run.run_id)
    await runtime.remove("task_never_started")


async def test_a_log_tail_keeps_the_last_bytes_and_never_splits_a_character(harness: Harness) -> None:
    runtime = harness.runtime()
    events = harness.events(runtime)
    run = harness.run(logs="début\nfin\n")
    await runtime.start(run)
    await events.wait(run.run_id)
    assert runtime.read_logs(run.run_id, tail=4) == "fin\n"
    assert runtime.read_logs(run.run_id, tail=len(b"but\nfin\n")) == "but\nfin\n"
    assert runtime.read_logs(run.run_id, tail=len("ébut\nfin\n".encode()) - 1) == "but\nfin\n"
    assert runtime.read_logs(run.run_id, tail=1000) == "début\nfin\n"
    assert runtime.read_logs("task_never_started", tail=100) == ""
    assert runtime.read_logs("../../etc", tail=100) == ""


async def test_after_a_restart_recover_reattaches_reports_and_loses_every_run_once(harness: Harness) -> None:
    first = harness.runtime()
    events = harness.events(first)
    going, ending = harness.gate(), harness.gate()
    still_going = harness.run(output="after the restart", gate=going)
    ends_while_away = harness.run(output="while away", exit_code=4, gate=ending)
    for run in (still_going, ends_while_away):
        await first.start(run)
        await events.wait(run.run_id, "started")
    await going.ready()
    await ending.ready()
    await first.close()
    ending.go()

    second = harness.runtime()
    events = harness.events(second)
    never = harness.run(run_id="task_never_started")
    await second.recover([still_going, ends_while_away, never])
    assert (await events.wait(never.run_id)).reason == "lost"
    ended = await events.wait(ends_while_away.run_id)
    assert (ended.reason, ended.exit_code, ended.output) == ("error", 4, "while away")
    going.go()
    resumed = await events.wait(still_going.run_id)
    assert (resumed.reason, resumed.exit_code, resumed.output) == ("completed", 0, "after the restart")
    # Saying "started" again after a restart is allowed (the engine ignores it); a second "exited" is not.
    later = harness.run()
    await second.start(later)
    await events.wait(later.run_id)
    for run in (still_going, ends_while_away, never):
        assert [event.kind for event in events.of(run.run_id)] in (["exited"], ["started", "exited"])
