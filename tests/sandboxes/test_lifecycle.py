"""A sandbox's life through every kind of door: create, run, exec, files, extend, delete."""

from __future__ import annotations

import base64

import anyio
import pytest

from tests.doors import Door, McpDoor
from tests.sandboxes.support import create, exec_ok, wait_status


async def test_create_run_exec_files_extend_delete(sbx_door: Door) -> None:
    created = await create(sbx_door, "life", env={"GREETING": "hello"}, timeout="10m")
    assert created["status"] == "provisioning"
    password = created["credentials"]["password"]
    assert len(password) >= 20 and created["envKeys"] == ["GREETING"]
    assert created["url"].startswith("http://life-") and ".sandboxes.localhost:" in created["url"]
    sid = created["id"]

    running = await wait_status(sbx_door, sid, "running")
    assert "credentials" not in running and password not in str(running)
    assert running["usage"]["processes"] >= 1 and running["usage"]["memoryBytes"] > 0

    echoed = await exec_ok(sbx_door, sid, 'echo "$GREETING world"; echo oops >&2')
    assert echoed["stdout"] == "hello world\n" and echoed["stderr"] == "oops\n" and not echoed["truncated"]
    seen = await exec_ok(sbx_door, sid, 'printf %s "$KUBEGATE_SANDBOX_PASSWORD"')
    assert seen["stdout"] == password

    failing = await sbx_door.call("sandboxes_exec", {"sandboxId": sid, "command": ["sh", "-c", "exit 3"]})
    assert failing.ok and failing.body["exitCode"] == 3
    killed = await sbx_door.call("sandboxes_exec", {"sandboxId": sid, "command": ["sh", "-c", "kill -TERM $$"]})
    assert killed.body["exitCode"] == 143
    slow = await sbx_door.call("sandboxes_exec", {"sandboxId": sid, "command": ["sleep", "30"], "timeout": "1s"})
    assert slow.body["exitCode"] == 137 and slow.body["timedOut"] is True
    fed = await sbx_door.call("sandboxes_exec", {"sandboxId": sid, "command": ["wc", "-c"], "stdin": "12345"})
    assert fed.body["stdout"].strip() == "5"
    too_long = await sbx_door.call("sandboxes_exec", {"sandboxId": sid, "command": ["true"], "timeout": "11m"})
    assert too_long.error_status == 400

    wrote = await sbx_door.call("sandboxes_write_file", {"sandboxId": sid, "path": "notes/a.txt", "content": "hé\n"})
    assert wrote.ok and wrote.body["size"] == 4
    read = await sbx_door.call("sandboxes_read_file", {"sandboxId": sid, "path": "notes/a.txt"})
    assert read.body["content"] == "hé\n"
    assert (await exec_ok(sbx_door, sid, "cat notes/a.txt"))["stdout"] == "hé\n"

    blob = bytes(range(256)) * 4
    encoded = base64.b64encode(blob).decode()
    await sbx_door.call("sandboxes_write_file", {"sandboxId": sid, "path": "bin/blob", "content": encoded,
                                                 "encoding": "base64"})
    back = await sbx_door.call("sandboxes_read_file", {"sandboxId": sid, "path": "bin/blob", "encoding": "base64"})
    assert base64.b64decode(back.body["content"]) == blob and back.body["size"] == 1024
    as_text = await sbx_door.call("sandboxes_read_file", {"sandboxId": sid, "path": "bin/blob"})
    assert as_text.error_status == 400 and "base64" in as_text.body["message"]
    missing = await sbx_door.call("sandboxes_read_file", {"sandboxId": sid, "path": "nope.txt"})
    assert missing.error_status == 404

    extended = await sbx_door.call("sandboxes_extend", {"sandboxId": sid, "timeout": "2h"})
    assert extended.ok and extended.body["sandbox"]["expiresAt"] > running["expiresAt"]
    too_far = await sbx_door.call("sandboxes_extend", {"sandboxId": sid, "timeout": "3h"})
    assert too_far.error_status == 400 and "timeout" in too_far.body["message"]

    listed = await sbx_door.call("sandboxes_list", {"status": "running"})
    assert [s["id"] for s in listed.body["sandboxes"]] == [sid]
    assert set(listed.body["sandboxes"][0]) >= {"id", "name", "status", "image", "url", "createdAt", "size",
                                                "expiresAt"}

    deleted = await sbx_door.call("sandboxes_delete", {"sandboxId": sid})
    assert deleted.body["sandbox"]["status"] == "terminated" and deleted.body["sandbox"]["reason"] == "deleted"
    assert (await sbx_door.call("sandboxes_get", {"sandboxId": sid})).error_status == 404
    assert (await sbx_door.call("sandboxes_exec", {"sandboxId": sid, "command": ["true"]})).error_status == 404


async def test_exec_output_arrives_as_log_messages_over_mcp(sbx_door: Door) -> None:
    if not isinstance(sbx_door, McpDoor):
        pytest.skip("log messages are an MCP feature")
    sid = (await create(sbx_door, "logs", timeout="10m"))["id"]
    try:
        await exec_ok(sbx_door, sid, "echo first-line; echo second-line >&2")
        # Notifications are handled apart from the result: the last may land just after it.
        with anyio.fail_after(10):
            while not ("first-line" in (joined := "".join(sbx_door.logs)) and "second-line" in joined):
                await anyio.sleep(0.01)
    finally:
        await sbx_door.call("sandboxes_delete", {"sandboxId": sid})


async def test_output_over_a_mebibyte_is_cut_and_flagged(sbx_door: Door) -> None:
    if sbx_door.name.startswith("mcp-http"):
        # The result carries the output twice (structured and text), over the SDK client's 1 MiB SSE event cap.
        pytest.skip("the MCP SDK's HTTP client refuses a server-sent event over 1 MiB")
    sid = (await create(sbx_door, "big", timeout="10m"))["id"]
    try:
        out = await exec_ok(sbx_door, sid, "head -c 3000000 /dev/zero | tr '\\0' x; echo done >&2")
        assert out["truncated"] is True and len(out["stdout"]) == 1 << 20 and out["stderr"] == "done\n"
    finally:
        await sbx_door.call("sandboxes_delete", {"sandboxId": sid})
