"""Hostile-tenant cases through the doors: input the gateway must refuse, output passed as data, a
rendered step over its cap, a run that cannot start, and a stdio session whose key dies."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.doors import Door, open_door
from tests.e2e.test_workflows import by_name, run, step
from tests.gateway import Gateway, mint_key


@pytest.fixture
def local_only(runtime_env: dict[str, str]) -> None:
    if runtime_env["KUBEGATE_RUNTIME"] != "local":
        pytest.skip("validation and the step cap do not depend on the runtime: tested on the local runtime")


GOOD: dict[str, Any] = {"name": "ok", "image": "alpine:3", "command": ["true"]}


@pytest.mark.usefixtures("local_only")
async def test_nul_bytes_bad_digits_newlines_and_sub_second_durations_are_400_naming_the_field(door: Door) -> None:
    cases: dict[str, tuple[dict[str, Any], str]] = {
        "nul in command": ({**GOOD, "command": ["echo", "a\x00b"]}, "command.1"),
        "nul in env": ({**GOOD, "env": {"TOKEN": "x\x00y"}}, "env.TOKEN"),
        "newline after image": ({**GOOD, "image": "alpine:3\n"}, "image"),
        "sub-second": ({**GOOD, "timeout": "500ms"}, "timeout"),
        "fraction": ({**GOOD, "timeout": "1.5h"}, "timeout"),
        "non-ascii digit": ({**GOOD, "timeout": "\u0663s"}, "timeout"),
        "zero": ({**GOOD, "timeout": "0s"}, "timeout"),
    }
    for case, (body, field) in cases.items():
        outcome = await door.call("tasks_create", body)
        assert outcome.error_status == 400, (case, outcome.body)
        assert outcome.body["message"].startswith(field), (case, outcome.body)
    sub_second = await door.call("tasks_create", {**GOOD, "timeout": "500ms"})
    assert "below a second" in sub_second.body["message"]
    step_nul = await door.call("workflows_create", {"name": "wf", "steps": [{**GOOD, "command": ["a\x00"]}]})
    assert step_nul.error_status == 400 and step_nul.body["message"].startswith("steps.0.command.0")
    shown = await door.call("tasks_create", {**GOOD, "timeout": "90m"})
    assert shown.ok and shown.body["task"]["timeout"] == "1h30m"


async def test_upstream_outputs_are_in_the_env_as_data_not_code(door: Door) -> None:
    hostile = """x"; echo INJECTED; echo "$(id -u)"""
    workflow = await run(door, [
        step("seed", "printf '%s' \"$HOSTILE\" > \"$KUBEGATE_OUTPUT\"", env={"HOSTILE": hostile}),
        step("use-it", "printf 'got:%s\\n' \"$KUBEGATE_OUTPUT_SEED\"", "seed"),
    ])
    steps = by_name(workflow)
    assert workflow["status"] == "completed", workflow
    assert steps["seed"]["output"] == hostile
    assert steps["use-it"]["output"] == f"got:{hostile}"
    assert "\nINJECTED" not in "\n" + steps["use-it"]["logs"]


@pytest.mark.usefixtures("local_only")
async def test_a_step_rendered_over_the_cap_fails_saying_so_without_running(door: Door) -> None:
    spray = "{{steps.big.output}}" * 1600  # 32 KiB of template, about 6.5 MB once rendered
    workflow = await run(door, [
        step("big", "head -c 4096 /dev/zero | tr '\\0' x > \"$KUBEGATE_OUTPUT\""),
        {**step("spray", "true", "big"), "command": ["echo", spray]},
        step("after", "echo never", "spray"),
    ])
    steps = by_name(workflow)
    assert workflow["status"] == "failed"
    assert len(steps["big"]["output"]) == 4096
    spray_step = steps["spray"]
    assert spray_step["status"] == "failed" and spray_step["reason"] == "error"
    assert "over the limit" in spray_step["message"] and "KUBEGATE_MAX_STEP_BYTES" in spray_step["message"]
    assert "startedAt" not in spray_step and not spray_step.get("logs")
    assert steps["after"]["status"] == "skipped"


@pytest.fixture(scope="module")
def unstartable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway whose runs cannot start: its runs dir is a file, so making a run's dir fails."""
    data_dir = tmp_path_factory.mktemp("unstartable")
    gw = Gateway(data_dir, env_extra={"KUBEGATE_RUNTIME": "local"}).start()
    runs = data_dir / "runs"
    if runs.is_dir():
        shutil.rmtree(runs)
    runs.write_text("not a directory\n")
    yield gw
    gw.stop()


@pytest.mark.parametrize("kind", ["rest", "shorthand", "mcp-http-session", "mcp-stdio"])
async def test_a_task_that_cannot_start_ends_failed_with_a_reason_and_no_host_path(kind: str,
                                                                                  unstartable: Gateway) -> None:
    key = mint_key(unstartable.data_dir, user="unlucky@example.test")
    async with open_door(kind, url=unstartable.url, stateless_url=unstartable.url, key=key,
                         data_dir=unstartable.data_dir, env={"KUBEGATE_RUNTIME": "local"}) as door:
        created = await door.call("tasks_create", {**GOOD, "name": "doomed", "env": {"SECRET": "s3cret"}})
        assert created.ok, created.body
        assert kind != "rest" or created.http_status == 201
        task = created.body["task"]
        assert (task["status"], task["reason"]) == ("failed", "error")
        assert task["message"].startswith("could not start: ")
        fetched = await door.call("tasks_get", {"taskId": task["id"]})
    assert fetched.body["task"]["status"] == "failed"
    for body in (created.body, fetched.body):
        text = json.dumps(body)
        assert str(unstartable.data_dir) not in text and "/runs" not in text and "s3cret" not in text


async def test_stdio_checks_its_key_on_every_call(gateway: Gateway, data_dir: Path, runtime_env: dict[str, str],
                                                  user_email: str) -> None:
    if runtime_env["KUBEGATE_RUNTIME"] != "local":
        pytest.skip("key checks do not depend on the runtime: tested on the local runtime")
    admin = mint_key(data_dir, user=user_email, name="admin")
    for ending in ("revoked", "expired"):
        key = mint_key(data_dir, user=user_email, name=f"stdio-{ending}")
        async with open_door("mcp-stdio", url=gateway.url, stateless_url=gateway.url, key=key, data_dir=data_dir,
                             env=runtime_env) as door:
            assert (await door.call("api_keys_list")).ok
            key_id = next(k["id"] for k in (await door.call("api_keys_list")).body["apiKeys"]
                          if k["name"] == f"stdio-{ending}")
            if ending == "revoked":
                async with httpx.AsyncClient(base_url=gateway.url,
                                             headers={"Authorization": f"Bearer {admin}"}) as http:
                    assert (await http.delete(f"/api/api-keys/{key_id}")).status_code == 200
            else:  # time passes: the key's expiry is now behind us
                with sqlite3.connect(data_dir / "kubegate.db") as db:
                    db.execute("UPDATE api_keys SET expires_at = '2000-01-01T00:00:00.000000Z' WHERE id = ?",
                               (key_id,))
            refused = await door.call("api_keys_create", {"name": "minted-after-death"})
            assert refused.error_status == 401, refused.body
            assert (await door.call("tasks_list")).error_status == 401
