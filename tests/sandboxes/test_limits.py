"""Sandboxes are per user: unique live names, a quota, and nothing of another user's in reach."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.doors import Door, open_door
from tests.gateway import Gateway, mint_key
from tests.sandboxes.support import create, exec_ok, wait_status


@pytest.fixture
async def stranger(sbx_gateway: Gateway, sbx_data_dir: Path,
               sbx_env: dict[str, str]) -> AsyncIterator[Door]:
    key = mint_key(sbx_data_dir, user="other-user@example.test")
    async with open_door("rest", url=sbx_gateway.url, stateless_url=sbx_gateway.url, key=key,
                         data_dir=sbx_data_dir, env=sbx_env) as door:
        yield door


async def test_live_names_are_unique_and_the_quota_holds(rest: Door) -> None:
    first = await create(rest, "same", timeout="10m")
    clash = await rest.call("sandboxes_create", {"name": "same", "image": "ubuntu:22.04"})
    assert clash.error_status == 409 and "same" in clash.body["message"]
    others = [await create(rest, f"n{i}", timeout="10m") for i in range(2)]
    over = await rest.call("sandboxes_create", {"name": "n9", "image": "ubuntu:22.04"})
    assert over.error_status == 403 and "KUBEGATE_MAX_SANDBOXES_PER_USER" in over.body["message"]
    await rest.call("sandboxes_delete", {"sandboxId": first["id"]})
    again = await create(rest, "same", timeout="10m")  # the name is free once its sandbox is gone
    for sandbox in (again, *others):
        await rest.call("sandboxes_delete", {"sandboxId": sandbox["id"]})


async def test_bad_input_is_refused_with_the_field_named(rest: Door) -> None:
    for body, field in (({"name": "Bad_Name", "image": "x"}, "name"), ({"name": "a" * 55, "image": "x"}, "name"),
                        ({"name": "ok", "image": "x", "timeout": "3h"}, "timeout"),
                        ({"name": "ok", "image": "x", "size": "huge"}, "size"),
                        ({"name": "ok", "image": "x", "env": {"KUBEGATE_X": "1"}}, "env")):
        outcome = await rest.call("sandboxes_create", body)
        assert outcome.error_status == 400 and field in outcome.body["message"], (body, outcome.body)


async def test_another_users_sandbox_is_404_everywhere(rest: Door, stranger: Door) -> None:
    sid = (await create(rest, "mine", timeout="10m"))["id"]
    try:
        calls = [("sandboxes_get", {}), ("sandboxes_exec", {"command": ["true"]}),
                 ("sandboxes_read_file", {"path": "x"}), ("sandboxes_write_file", {"path": "x", "content": "y"}),
                 ("sandboxes_extend", {"timeout": "1h"}), ("sandboxes_delete", {})]
        for tool, args in calls:
            outcome = await stranger.call(tool, {"sandboxId": sid, **args})
            assert outcome.error_status == 404, (tool, outcome.body)
        assert (await stranger.call("sandboxes_list", {})).body["sandboxes"] == []
        assert (await wait_status(rest, sid, "running"))["id"] == sid
    finally:
        await rest.call("sandboxes_delete", {"sandboxId": sid})


async def test_path_escapes_are_refused(rest: Door, sbx_data_dir: Path) -> None:
    sid = (await create(rest, "paths", timeout="10m"))["id"]
    try:
        await exec_ok(rest, sid, f"ln -s /etc etc-link && ln -s {sbx_data_dir} data-link && ln -s /etc/passwd pw")
        for path in ("../x", "a/../../x", "/etc/passwd", "etc-link/passwd", "data-link/kubegate.db", "pw",
                     str(sbx_data_dir / "kubegate.db")):
            read = await rest.call("sandboxes_read_file", {"sandboxId": sid, "path": path})
            assert read.error_status == 400, (path, read.body)
            wrote = await rest.call("sandboxes_write_file", {"sandboxId": sid, "path": path, "content": "x"})
            assert wrote.error_status == 400, (path, wrote.body)
        for cwd in ("..", "/etc", "etc-link"):
            ran = await rest.call("sandboxes_exec", {"sandboxId": sid, "command": ["pwd"], "cwd": cwd})
            assert ran.error_status == 400, (cwd, ran.body)
        await exec_ok(rest, sid, "mkdir -p sub/dir")
        inside = await rest.call("sandboxes_exec", {"sandboxId": sid, "command": ["pwd"], "cwd": "sub/dir"})
        assert inside.body["stdout"].rstrip().endswith("/sub/dir")
        assert (sbx_data_dir / "kubegate.db").stat().st_size > 0
        assert not (sbx_data_dir / "x").exists()
    finally:
        await rest.call("sandboxes_delete", {"sandboxId": sid})


async def test_the_timeout_ends_a_sandbox(rest: Door) -> None:
    sid = (await create(rest, "brief", timeout="2s"))["id"]
    ended = await wait_status(rest, sid, "terminated", "failed")
    assert ended["status"] == "terminated" and ended["reason"] == "timeout" and ended["endedAt"]
    late = await rest.call("sandboxes_exec", {"sandboxId": sid, "command": ["true"]})
    assert late.error_status == 409 and "terminated" in late.body["message"]
    await rest.call("sandboxes_delete", {"sandboxId": sid})
