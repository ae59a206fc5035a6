"""Workflows through every door: DAG scheduling, output passing, failure, validation, deletion, the example."""

from __future__ import annotations

import json
import signal
import uuid
from pathlib import Path
from typing import Any

import anyio
import httpx

from tests.doors import Door, McpDoor
from tests.gateway import Gateway, mint_key
from tests.processes import POLL, until_alive

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "build-test-deploy.json"


def step(name: str, script: str, *deps: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": "alpine:3", "command": ["sh", "-c", script], "dependsOn": list(deps), **fields}


async def run(door: Door, steps: list[dict[str, Any]], name: str = "wf") -> dict[str, Any]:
    created = await door.call("workflows_create", {"name": name, "steps": steps})
    assert created.ok, created.body
    assert created.body["workflow"]["status"] == "pending"
    done = await door.call("workflows_wait", {"workflowId": created.body["workflow"]["id"], "timeoutSeconds": 60})
    assert done.ok, done.body
    workflow: dict[str, Any] = done.body["workflow"]
    return workflow


def by_name(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in workflow["steps"]}


async def test_diamond_passes_outputs_along_every_edge(door: Door) -> None:
    workflow = await run(door, [
        step("seed", "echo planting; echo 42"),
        step("left", "echo {{steps.seed.output}}-left", "seed"),
        step("right", 'echo "$SEED-right" ; printf "r%s" "$SEED" > "$KUBEGATE_OUTPUT"', "seed",
             env={"SEED": "{{steps.seed.output}}"}),
        step("join", "echo '{{steps.left.output}}+{{steps.right.output}}+{{steps.seed.output}}'", "left", "right"),
    ], name="diamond")
    steps = by_name(workflow)
    assert workflow["status"] == "completed" and workflow["completedSteps"] == 4
    assert [s["name"] for s in workflow["steps"]] == ["seed", "left", "right", "join"]
    assert steps["seed"]["output"] == "42" and "planting" in steps["seed"]["logs"]
    assert steps["left"]["output"] == "42-left"
    assert steps["right"]["output"] == "r42" and "42-right" in steps["right"]["logs"]
    assert steps["join"]["output"] == "42-left+r42+42"
    assert all(s["status"] == "completed" and s["exitCode"] == 0 for s in steps.values())
    assert steps["right"]["envKeys"] == ["SEED"] and steps["join"]["dependsOn"] == ["left", "right"]
    listed = await door.call("workflows_list", {"limit": 5})
    summary = next(w for w in listed.body["workflows"] if w["id"] == workflow["id"])
    assert summary == {**summary, "name": "diamond", "status": "completed", "steps": 4, "completedSteps": 4}


async def test_failed_step_skips_its_dependants_and_fails_the_workflow(door: Door) -> None:
    workflow = await run(door, [
        step("prepare", "echo ready"),
        step("broken", "echo about to fail >&2; exit 3", "prepare"),
        step("after", "echo never", "broken"),
        step("later", "echo never either", "after"),
        step("sideline", "echo independent", "prepare"),
    ])
    steps = by_name(workflow)
    assert workflow["status"] == "failed" and workflow["completedSteps"] == 2
    assert steps["broken"]["status"] == "failed" and steps["broken"]["exitCode"] == 3
    assert "about to fail" in steps["broken"]["logs"]
    assert steps["after"]["status"] == "skipped" and "broken" in steps["after"]["message"]
    assert steps["later"]["status"] == "skipped" and "startedAt" not in steps["later"]
    assert steps["sideline"]["status"] == "completed"
    failed = await door.call("workflows_list", {"status": "failed", "limit": 100})
    assert workflow["id"] in [w["id"] for w in failed.body["workflows"]]


async def test_invalid_workflows_are_400_naming_the_steps(door: Door) -> None:
    cases: dict[str, tuple[list[dict[str, Any]], list[str]]] = {
        "duplicate": ([step("a", "true"), step("a", "true")], ["duplicate", "a"]),
        "unknown": ([step("a", "true"), step("b", "true", "ghost")], ["steps.b.dependsOn", "ghost"]),
        "cycle": ([step("a", "true", "b"), step("b", "true", "a"), step("c", "true")], ["a -> b -> a"]),
        "self": ([step("a", "true", "a")], ["a -> a"]),
        "empty": ([], ["steps", "at least one step"]),
        "too-many": ([step(f"s{i}", "true") for i in range(101)], ["at most 100 steps"]),
        "stranger": ([step("a", "echo 1"), step("b", "echo {{steps.a.output}}")], ["steps.b", "a"]),
        "unknown-ref": ([step("a", "echo {{steps.zz.output}}")], ["steps.a", "zz"]),
        "bad-name": ([step("Bad_Name", "true")], ["steps.0.name"]),
    }
    for case, (steps, words) in cases.items():
        outcome = await door.call("workflows_create", {"name": "bad", "steps": steps})
        assert outcome.error_status == 400 and outcome.body["error"] == "validation_error", (case, outcome.body)
        for word in words:
            assert word in outcome.body["message"], (case, outcome.body)


async def test_delete_running_workflow_stops_its_steps(door: Door) -> None:
    marker = f"{uuid.uuid4().int % 10**6 + 1000}.321"
    created = await door.call("workflows_create", {"name": "long", "steps": [
        step("nap", f"exec sleep {marker}"), step("after", "echo never", "nap"),
    ]})
    workflow_id = created.body["workflow"]["id"]
    await until_alive(marker)
    deleted = await door.call("workflows_delete", {"workflowId": workflow_id})
    assert deleted.ok and deleted.body["workflow"]["status"] == "failed"
    assert by_name(deleted.body["workflow"])["nap"]["reason"] == "cancelled"
    assert (await door.call("workflows_get", {"workflowId": workflow_id})).error_status == 404
    await until_alive(marker, alive=False)
    assert (await door.call("workflows_delete", {"workflowId": workflow_id})).error_status == 404


async def test_another_users_workflow_is_not_found(door: Door, gateway: Gateway, data_dir: Path) -> None:
    other = mint_key(data_dir, user="workflows-other@example.test")
    async with httpx.AsyncClient(base_url=gateway.url, headers={"Authorization": f"Bearer {other}"}) as http:
        theirs = (await http.post("/api/workflows", json={"name": "x", "steps": [step("a", "true")]})).json()
    their_id = theirs["workflow"]["id"]
    assert (await door.call("workflows_get", {"workflowId": their_id})).error_status == 404
    assert (await door.call("workflows_delete", {"workflowId": their_id})).error_status == 404
    assert their_id not in str((await door.call("workflows_list")).body)


async def test_build_test_deploy_example_runs(door: Door) -> None:
    example = json.loads(EXAMPLE.read_text())
    workflow = await run(door, example["steps"], name=example["name"])
    steps = by_name(workflow)
    assert workflow["status"] == "completed", workflow
    assert steps["build"]["output"].startswith("myapp-1.0.0.tar sha256:")
    assert steps["test"]["output"] == "3 passed, 0 failed"
    assert steps["deploy"]["output"] == f"deployed {steps['build']['output']}"
    # The example passes outputs the safe way: through $KUBEGATE_OUTPUT_<STEP>, never spliced into sh -c.
    assert "{{steps." not in EXAMPLE.read_text()
    assert "applying deploy.yaml after: 3 passed, 0 failed" in steps["deploy"]["logs"]


async def test_step_logs_resource(door: Door) -> None:
    workflow = await run(door, [step("talk", "echo line one; echo line two")])
    assert "line two" in by_name(workflow)["talk"]["logs"]
    if isinstance(door, McpDoor):
        uri = f"kubegate://workflows/{workflow['id']}/steps/talk/logs"
        read = await door.client.read_resource(uri)
        assert "line one" in read.contents[0].text  # type: ignore[union-attr]


async def test_wait_reports_completed_steps_as_progress(mcp_door: McpDoor) -> None:
    door = mcp_door  # progress notifications exist on MCP only; the other doors get the final answer alone
    created = await door.call("workflows_create", {"name": "progress", "steps": [
        step("one", "true"), step("two", "true", "one"), step("three", "true", "two"),
    ]})
    seen: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total))

    result = await door.client.call_tool("workflows_wait", {"workflowId": created.body["workflow"]["id"]},
                                         progress_callback=on_progress)
    assert result.structured_content and result.structured_content["workflow"]["status"] == "completed"
    assert seen and seen[-1] == (3, 3) and all(total == 3 for _, total in seen)
    assert [p for p, _ in seen] == sorted({p for p, _ in seen})


async def _runs_waiting(runs_dir: Path, markers: list[str]) -> dict[str, Path]:
    """The run dirs whose logs show each marker, once every marker has appeared."""
    found: dict[str, Path] = {}
    with anyio.fail_after(20):
        while len(found) < len(markers):
            await anyio.sleep(POLL)
            for log in runs_dir.glob("*/log"):
                text = log.read_text()
                found.update({m: log.parent for m in markers if m in text})
    return found


async def test_killed_gateway_resumes_every_workflow_without_running_a_step_twice(tmp_path: Path) -> None:
    data = tmp_path / "killed"
    gw = Gateway(data).start()
    key = {"Authorization": f"Bearer {mint_key(data)}"}
    gate = "echo {0}-waiting; while [ ! -e go ]; do sleep 0.02; done; echo {0}-done"
    steps = [
        step("quick", gate.format("quick")),
        step("long", gate.format("long")),
        step("join", "echo '{{steps.quick.output}} {{steps.long.output}}'", "quick", "long"),
        step("last", "echo last: {{steps.join.output}}", "join"),
    ]
    try:
        async with httpx.AsyncClient(base_url=gw.url, headers=key) as http:
            created = await http.post("/api/workflows", json={"name": "survivor", "steps": steps})
        workflow_id = created.json()["workflow"]["id"]
        runs = await _runs_waiting(data / "runs", ["quick-waiting", "long-waiting"])
        gw.stop(signal.SIGKILL)
        # quick ends while no gateway is there; long is still going when the next one starts.
        (runs["quick-waiting"] / "work" / "go").touch()
        with anyio.fail_after(10):
            while not (runs["quick-waiting"] / "exit.json").exists():
                await anyio.sleep(POLL)
        gw = Gateway(data).start()
        (runs["long-waiting"] / "work" / "go").touch()
        async with httpx.AsyncClient(base_url=gw.url, headers=key, timeout=60) as http:
            waited = await http.post("/api/mcp", json={
                "method": "workflows/wait", "params": {"workflowId": workflow_id, "timeoutSeconds": 30}})
        workflow = waited.json()["result"]["workflow"]
    finally:
        gw.stop()
    outputs = {s["name"]: s["output"] for s in workflow["steps"]}
    assert workflow["status"] == "completed", workflow
    assert outputs == {"quick": "quick-done", "long": "long-done", "join": "quick-done long-done",
                       "last": "last: quick-done long-done"}
    assert len(list((data / "runs").iterdir())) == len(steps)
    for name in ("quick", "long"):
        assert by_name(workflow)[name]["logs"].count(f"{name}-waiting") == 1
