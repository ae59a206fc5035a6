"""The task lifecycle through every door: output, exit codes, timeouts, deletion, listing, isolation."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.doors import Door, McpDoor
from tests.gateway import Gateway, mint_key
from tests.processes import until_alive
from tests.runtime.support import Handshake


async def run(door: Door, command: list[str], **fields: object) -> dict[str, object]:
    created = await door.call("tasks_create", {"name": "t", "image": "alpine:3", "command": command, **fields})
    assert created.ok, created.body
    assert created.body["task"]["status"] == "pending"
    done = await door.call("tasks_wait", {"taskId": created.body["task"]["id"], "timeoutSeconds": 60})
    assert done.ok, done.body
    task: dict[str, object] = done.body["task"]
    return task


async def test_success_with_output_and_logs(door: Door) -> None:
    task = await run(door, ["sh", "-c", "echo hello from the task; echo result-42"])
    assert task["status"] == "completed" and task["exitCode"] == 0 and task["reason"] == "completed"
    assert "hello from the task" in str(task["logs"])
    assert task["output"] == "result-42"
    assert task["startedAt"] and task["completedAt"]
    fetched = await door.call("tasks_get", {"taskId": task["id"]})
    assert fetched.body["task"]["status"] == "completed" and "hello from the task" in fetched.body["task"]["logs"]


async def test_non_zero_exit_code_fails_the_task(door: Door) -> None:
    task = await run(door, ["sh", "-c", "echo oops >&2; exit 7"])
    assert task["status"] == "failed" and task["exitCode"] == 7 and task["reason"] == "error"
    assert "oops" in str(task["logs"])


async def test_timeout_fails_the_task_with_reason_timeout(door: Door) -> None:
    # 3 s, not 1: a Job's deadline counts from the Job's start, and a loaded cluster may take a second to run its Pod.
    task = await run(door, ["sh", "-c", "echo started; sleep 30"], timeout="3s")
    assert task["status"] == "failed" and task["reason"] == "timeout"
    assert "started" in str(task["logs"])


async def test_delete_while_running_stops_the_process(door: Door) -> None:
    marker = f"{uuid.uuid4().int % 10**6 + 1000}.123"
    created = await door.call("tasks_create", {"name": "long", "image": "alpine", "command": ["sleep", marker]})
    task_id = created.body["task"]["id"]
    await until_alive(marker)
    deleted = await door.call("tasks_delete", {"taskId": task_id})
    assert deleted.ok and deleted.body["task"]["id"] == task_id
    assert (await door.call("tasks_get", {"taskId": task_id})).error_status == 404
    await until_alive(marker, alive=False)
    assert (await door.call("tasks_delete", {"taskId": task_id})).error_status == 404


async def test_status_filter_limit_and_cursor(door: Door) -> None:
    ids = [(await run(door, ["true"]))["id"] for _ in range(3)]
    failed = await run(door, ["false"])
    page = await door.call("tasks_list", {"limit": 2})
    assert [t["id"] for t in page.body["tasks"]] == [failed["id"], ids[2]]
    rest = await door.call("tasks_list", {"limit": 2, "cursor": page.body["nextCursor"]})
    assert [t["id"] for t in rest.body["tasks"]] == [ids[1], ids[0]]
    assert "nextCursor" not in rest.body
    completed = await door.call("tasks_list", {"status": "completed"})
    assert [t["id"] for t in completed.body["tasks"]] == list(reversed(ids))
    assert [t["id"] for t in (await door.call("tasks_list", {"status": "failed"})).body["tasks"]] == [failed["id"]]
    assert (await door.call("tasks_list", {"limit": 0})).error_status == 400
    assert (await door.call("tasks_list", {"limit": 101})).error_status == 400
    assert (await door.call("tasks_list", {"status": "exploded"})).error_status == 400
    assert (await door.call("tasks_list", {"cursor": "!!"})).error_status == 400


async def test_env_values_are_secret(door: Door) -> None:
    task = await run(door, ["sh", "-c", 'test "${#DB_URL}" = 18 && echo matched'],
                     env={"DB_URL": "postgres://hunter2"})
    assert task["status"] == "completed" and "matched" in str(task["logs"])
    assert task["envKeys"] == ["DB_URL"]
    for outcome in (await door.call("tasks_get", {"taskId": task["id"]}), await door.call("tasks_list")):
        assert "hunter2" not in str(outcome.body)


async def test_another_users_task_is_not_found(door: Door, gateway: Gateway, data_dir: Path) -> None:
    other = mint_key(data_dir, user="tasks-other@example.test")
    async with httpx.AsyncClient(base_url=gateway.url, headers={"Authorization": f"Bearer {other}"}) as http:
        theirs = (await http.post("/api/tasks", json={"name": "x", "image": "alpine", "command": ["true"]})).json()
    their_id = theirs["task"]["id"]
    assert (await door.call("tasks_get", {"taskId": their_id})).error_status == 404
    assert (await door.call("tasks_delete", {"taskId": their_id})).error_status == 404
    assert their_id not in str((await door.call("tasks_list")).body)


async def test_invalid_input_is_400_naming_the_field(door: Door) -> None:
    good: dict[str, Any] = {"name": "ok", "image": "alpine:3", "command": ["true"]}
    cases: dict[str, dict[str, Any]] = {
        "name": {**good, "name": "Not_A_Label"},
        "timeout": {**good, "timeout": "10 minutes"},
        "command": {**good, "command": []},
        "image": {**good, "image": "UPPER CASE"},
        "sneaky": {**good, "sneaky": True},
    }
    for field, body in cases.items():
        outcome = await door.call("tasks_create", body)
        assert outcome.error_status == 400, (field, outcome.body)
        assert field in outcome.body["message"], (field, outcome.body)
    too_long = await door.call("tasks_create", {**good, "timeout": "48h"})
    assert too_long.error_status == 400 and "timeout" in too_long.body["message"]


async def test_wait_sends_progress_and_log_lines_over_mcp(mcp_door: McpDoor, handshake: Handshake) -> None:
    door = mcp_door
    script = "echo first line; " + handshake.script("echo second line")
    created = await door.call("tasks_create", {"name": "chatty", "image": "alpine", "command": ["sh", "-c", script]})
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, message))
        if progress >= 1.0:  # the task ends only once the wait has counted a second, however slow the machine
            handshake.go()

    result = await door.client.call_tool("tasks_wait", {"taskId": created.body["task"]["id"], "timeoutSeconds": 30},
                                         progress_callback=on_progress)
    assert result.structured_content and result.structured_content["task"]["status"] == "completed"
    # The first report is what the task is doing when the wait begins: still pending (a pod not yet
    # scheduled) or already running.
    assert len(seen) >= 2 and seen[0][1] in {"task pending", "task running"} and seen[-1][1] == "task completed"
    assert "task running" in {message for _, message in seen}
    assert seen[-1][0] >= 1.0, "progress counts the seconds waited"
    assert [p for p, _ in seen] == sorted(p for p, _ in seen)
    if door.name != "mcp-http-stateless":  # without a session the SDK has no log level to send under
        assert "first line" in "".join(door.logs)

    uri = f"kubegate://tasks/{created.body['task']['id']}/logs"
    read = await door.client.read_resource(uri)
    assert "second line" in read.contents[0].text  # type: ignore[union-attr]
    templates = await door.client.list_resource_templates()
    assert "kubegate://tasks/{taskId}/logs" in [t.uri_template for t in templates.resource_templates]
