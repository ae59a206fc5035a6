"""Who sees what: the spec's shorthand example, quotas, templates that cannot be deployed, other users, secrets."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.deployments.support import ADMIN, HTTP_SERVER, create, fetch, wait_served, wait_status
from tests.doors import Door, open_door
from tests.gateway import Gateway, mint_key


async def test_the_specs_shorthand_example_verbatim(rest: Door, dep_gateway: Gateway, dep_key: str) -> None:
    ready = await create(rest, image="python:3.12-slim", port=9000, command=HTTP_SERVER)
    crashing = await create(rest, image="busybox", port=8080, command=["false"])
    try:
        await wait_status(rest, ready["name"], "Ready")
        await wait_status(rest, crashing["name"], "Error")
        async with httpx.AsyncClient(base_url=dep_gateway.url, headers={"Authorization": f"Bearer {dep_key}"}) as http:
            response = await http.post("/api/mcp", json={"method": "deployments/list", "params": {"status": "running"}})
        assert response.status_code == 200, response.text
        items = response.json()["result"]["deployments"]
        assert [item["name"] for item in items] == [ready["name"]]
        assert items[0]["status"] == "Ready" and items[0]["url"] == ready["url"]  # the core vocabulary
        errors = (await rest.call("deployments_list", {"status": "Error"})).body["deployments"]
        assert [item["name"] for item in errors] == [crashing["name"]]
    finally:
        for name in (ready["name"], crashing["name"]):
            await rest.call("deployments_delete", {"name": name})


async def test_quota_and_templates_that_cannot_be_deployed(dep_gateway: Gateway, dep_data_dir: Path) -> None:
    admin_key = mint_key(dep_data_dir, user=ADMIN)
    async with open_door("rest", url=dep_gateway.url, stateless_url=dep_gateway.url, key=admin_key,
                         data_dir=dep_data_dir) as admin:
        made = await admin.call("templates_create", {"name": "off-for-now", "image": "busybox", "enabled": False})
        assert made.ok, made.body
        unknown = await admin.call("deployments_create", {"template": "no-such-template"})
        assert unknown.error_status == 400 and "templates_list" in unknown.body["message"]
        disabled = await admin.call("deployments_create", {"template": "off-for-now"})
        assert disabled.error_status == 400
        names = [(await create(admin, image="busybox", port=8080, command=["sleep", "600"]))["name"] for _ in range(3)]
        try:
            over = await admin.call("deployments_create", {"image": "busybox", "port": 8080, "command": ["true"]})
            assert over.error_status == 403 and "KUBEGATE_MAX_DEPLOYMENTS_PER_USER" in over.body["message"]
            assert len((await admin.call("deployments_list")).body["deployments"]) == 3
        finally:
            for name in names:
                await admin.call("deployments_delete", {"name": name})


async def test_another_users_deployment_is_not_found_anywhere(rest: Door, dep_gateway: Gateway, dep_key: str,
                                                              dep_data_dir: Path) -> None:
    internal = await create(rest, template="hello-python", visibility="internal")
    name, url = internal["name"], internal["url"]
    stranger = mint_key(dep_data_dir, user="stranger@example.test")
    try:
        await wait_status(rest, name, "Ready")
        owner = await wait_served(dep_gateway.url, url, "Hello from kubegate", authorization=f"Bearer {dep_key}")
        assert "token set" in owner
        assert (await fetch(dep_gateway.url, url)).status_code == 401
        assert (await fetch(dep_gateway.url, url, authorization=f"Bearer {stranger}")).status_code == 404
        async with open_door("rest", url=dep_gateway.url, stateless_url=dep_gateway.url, key=stranger,
                             data_dir=dep_data_dir) as other:
            for tool, extra in [("deployments_get", {}), ("deployments_status", {}), ("deployments_logs", {}),
                                ("deployments_metrics", {}), ("deployments_scale", {"replicas": 2}),
                                ("deployments_update", {"envVars": {"A": "b"}}), ("deployments_delete", {})]:
                outcome = await other.call(tool, {"name": name, **extra})
                assert outcome.error_status == 404, (tool, outcome.body)
            assert (await other.call("deployments_list")).body["deployments"] == []
        assert (await rest.call("deployments_status", {"name": name})).body["status"] == "Ready"
    finally:
        await rest.call("deployments_delete", {"name": name})


async def test_secret_values_are_never_shown_or_logged(rest: Door, dep_gateway: Gateway) -> None:
    created = await create(rest, template="hello-python")
    try:
        await wait_status(rest, created["name"], "Ready")
        answers = [created, (await rest.call("deployments_get", {"name": created["name"]})).body,
                   (await rest.call("deployments_list")).body,
                   (await rest.call("deployments_logs", {"name": created["name"]})).body,
                   (await rest.call("templates_get", {"name": "hello-python"})).body]
        assert all("change-me" not in str(answer) for answer in answers)
        logged = dep_gateway.logs()
        assert logged, "the gateway wrote a log to search"
        assert "change-me" not in logged
    finally:
        await rest.call("deployments_delete", {"name": created["name"]})
