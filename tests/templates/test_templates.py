"""Templates through every door: read with deployments:read, writes for administrators only,
secret values never shown back, validation that names the field, and 404 for unknown names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.doors import Door, McpDoor
from tests.gateway import Gateway, mint_key
from tests.templates.conftest import ADMIN, OpenAs

SECRET = "s3cr3t-Value-9f2c"


def _names(outcome_body: dict[str, Any]) -> list[str]:
    return [t["name"] for t in outcome_body["templates"]]


async def test_the_examples_file_is_listed_with_deployments_read(open_as: OpenAs, tpl_dir: Path) -> None:
    reader = mint_key(tpl_dir, user="reader@example.test", scopes=["deployments:read"])
    async with open_as(reader) as door:
        listed = await door.call("templates_list")
        assert listed.ok, listed.body
        assert {"static-site", "hello-python"} <= set(_names(listed.body))
        got = await door.call("templates_get", {"name": "hello-python"})
    assert got.ok, got.body
    template = got.body["template"]
    assert (template["port"], template["healthCheckPath"], template["cpuRequest"], template["memoryLimit"]) == (
        8080, "/healthz", "100m", "512Mi")
    assert template["source"] == "file" and template["version"] >= 1 and template["command"][0] == "python3"
    env = {e["name"]: e for e in template["envVars"]}
    assert env["GREETING"] == {"name": "GREETING", "value": "Hello from kubegate", "secret": False}
    assert env["API_TOKEN"] == {"name": "API_TOKEN", "secret": True}, "a secret value is never shown"
    assert "change-me" not in str(listed.body) + str(got.body)


async def test_a_key_without_deployments_read_is_refused(open_as: OpenAs, tpl_dir: Path) -> None:
    key = mint_key(tpl_dir, user="tasks-only@example.test", scopes=["tasks:read", "tasks:write"])
    async with open_as(key) as door:
        outcome = await door.call("templates_list")
    assert outcome.error_status == 403 and outcome.body["error"] == "forbidden"


async def test_an_admin_creates_updates_and_deletes(open_as: OpenAs, tpl_dir: Path, tpl_gateway: Gateway) -> None:
    admin = mint_key(tpl_dir, user=ADMIN)
    async with open_as(admin) as door:
        name = f"app-{door.name}"
        created = await door.call("templates_create", {
            "name": name, "image": "nginx:1.27", "port": 80, "cpuLimit": "1",
            "envVars": [{"name": "MODE", "value": "prod"}, {"name": "DB_PASSWORD", "value": SECRET, "secret": True}],
        })
        assert created.ok and (door.name != "rest" or created.http_status == 201), created.body
        first = created.body["template"]
        assert (first["version"], first["port"], first["cpuRequest"], first["cpuLimit"], first["displayName"],
                first["memoryRequest"], first["healthCheckPath"], first["enabled"], first["source"]) == (
            1, 80, "100m", "1", name, "128Mi", "/", True, "api")

        again = await door.call("templates_create", {"name": name, "image": "nginx:1.27"})
        assert again.error_status == 409 and again.body["error"] == "conflict"

        # The secret is left out (kept as it is); MODE changes; the version grows.
        updated = await door.call("templates_update", {
            "name": name, "enabled": False, "command": ["nginx", "-g", "daemon off;"],
            "envVars": [{"name": "DB_PASSWORD"}, {"name": "MODE", "value": "staging"}],
        })
        assert updated.ok, updated.body
        second = updated.body["template"]
        assert (second["version"], second["enabled"], second["port"], second["command"][0]) == (2, False, 80, "nginx")
        assert second["envVars"] == [{"name": "DB_PASSWORD", "secret": True},
                                     {"name": "MODE", "value": "staging", "secret": False}]
        same = await door.call("templates_update", {"name": name, "enabled": False})
        assert same.ok and same.body["template"]["version"] == 2, "a change that changes nothing is no new version"

        got = await door.call("templates_get", {"name": name})
        assert got.body["template"] == second
        deleted = await door.call("templates_delete", {"name": name})
        assert deleted.ok and deleted.body["template"]["name"] == name
        gone = await door.call("templates_get", {"name": name})
        assert gone.error_status == 404 and gone.body["error"] == "resource_not_found"
        assert name not in _names((await door.call("templates_list")).body)
        bodies = str([created.body, updated.body, got.body, deleted.body])
    assert SECRET not in bodies
    assert SECRET not in tpl_gateway.logs(), "secret values are never logged"


async def test_non_admins_may_not_write(open_as: OpenAs, tpl_dir: Path) -> None:
    user = mint_key(tpl_dir, user="builder@example.test")  # every scope, deployments:write included
    async with open_as(user) as door:
        for tool, args in (("templates_create", {"name": "mine", "image": "nginx"}),
                           ("templates_update", {"name": "hello-python", "port": 9999}),
                           ("templates_delete", {"name": "static-site"})):
            outcome = await door.call(tool, args)
            assert outcome.error_status == 403 and outcome.body["error"] == "forbidden", (tool, outcome.body)
            assert "administrators" in outcome.body["message"]
        still = await door.call("templates_get", {"name": "hello-python"})
        assert still.ok and still.body["template"]["port"] == 8080
        assert (await door.call("templates_get", {"name": "static-site"})).ok
        if isinstance(door, McpDoor):  # admin-only tools are not offered to others, so agents don't read them
            offered = {t.name for t in (await door.client.list_tools()).tools}
            assert {"templates_list", "templates_get"} <= offered
            assert not offered & {"templates_create", "templates_update", "templates_delete", "audit_list"}


async def test_admins_are_offered_the_write_tools(open_as: OpenAs, tpl_dir: Path) -> None:
    async with open_as(mint_key(tpl_dir, user=ADMIN)) as door:
        if isinstance(door, McpDoor):
            offered = {t.name for t in (await door.client.list_tools()).tools}
            assert {"templates_create", "templates_update", "templates_delete", "audit_list"} <= offered


async def _refused(door: Door, tool: str, args: dict[str, Any], field: str) -> None:
    outcome = await door.call(tool, args)
    assert outcome.error_status == 400, (args, outcome.body)
    assert outcome.body["error"] == "validation_error" and field in outcome.body["message"], (field, outcome.body)
    assert SECRET not in outcome.body["message"]


async def test_bad_input_is_refused_naming_the_field(open_as: OpenAs, tpl_dir: Path) -> None:
    async with open_as(mint_key(tpl_dir, user=ADMIN)) as door:
        base = {"name": f"bad-{door.name}", "image": "nginx:1.27"}
        for patch, field in (
            ({"port": 0}, "port"), ({"port": 70000}, "port"), ({"cpuRequest": "lots"}, "cpuRequest"),
            ({"memoryLimit": "512MB"}, "memoryLimit"), ({"cpuLimit": "0"}, "cpuLimit"),
            ({"cpuRequest": "2", "cpuLimit": "1500m"}, "cpuRequest"),
            ({"memoryRequest": "1Gi", "memoryLimit": "512Mi"}, "memoryRequest"),
            ({"healthCheckPath": "healthz"}, "healthCheckPath"), ({"name": "Not_DNS"}, "name"),
            ({"image": "nginx:bad tag"}, "image"), ({"colour": "blue"}, "colour"),
            ({"envVars": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}, "envVars.1.name"),
            ({"envVars": [{"name": "TOKEN", "secret": True}]}, "envVars.0.value"),
            ({"envVars": [{"name": "1BAD", "value": SECRET}]}, "envVars.0.name"),
            ({"envVars": [{"name": "KUBEGATE_X", "value": "1"}]}, "envVars.0.name"),
            ({"displayName": None}, "displayName"),
        ):
            await _refused(door, "templates_create", {**base, **patch}, field)
        await _refused(door, "templates_update", {"name": "hello-python", "cpuRequest": "4"}, "cpuRequest")
        await _refused(door, "templates_update", {"name": "hello-python", "port": None}, "port")
        assert (await door.call("templates_get", {"name": base["name"]})).error_status == 404, "nothing was created"


async def test_unknown_templates_are_not_found(open_as: OpenAs, tpl_dir: Path) -> None:
    async with open_as(mint_key(tpl_dir, user=ADMIN)) as door:
        for tool, args in (("templates_get", {"name": "no-such-app"}),
                           ("templates_update", {"name": "no-such-app", "port": 81}),
                           ("templates_delete", {"name": "no-such-app"})):
            outcome = await door.call(tool, args)
            assert outcome.error_status == 404 and outcome.body["error"] == "resource_not_found", (tool, outcome.body)
