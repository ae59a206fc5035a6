"""An update of a deployment with two replicas rolls them over with no gap: every request on the way is answered."""

from __future__ import annotations

import anyio
import httpx

from tests.deployments.support import create, wait_served, wait_status
from tests.doors import Door
from tests.gateway import Gateway


async def test_an_update_at_two_replicas_leaves_no_gap(rest: Door, dep_gateway: Gateway) -> None:
    created = await create(rest, template="hello-python", replicas=2, envVars={"GREETING": "Old"})
    name, host = created["name"], created["url"].split("://", 1)[1]
    try:
        await wait_status(rest, name, "Ready", ready=2)
        await wait_served(dep_gateway.url, created["url"], "Old")
        assert (await rest.call("deployments_update", {"name": name, "envVars": {"GREETING": "New"}})).ok
        answers: list[tuple[int, str]] = []
        async with httpx.AsyncClient(base_url=dep_gateway.url, headers={"Host": host}, timeout=30) as app:
            with anyio.fail_after(60):
                while True:
                    response = await app.get("/")
                    answers.append((response.status_code, response.text))
                    status = (await rest.call("deployments_status", {"name": name})).body
                    if "New" in response.text and status["status"] == "Ready" and status["readyReplicas"] == 2:
                        break
        assert all(code == 200 for code, _ in answers), [a for a in answers if a[0] != 200]
    finally:
        await rest.call("deployments_delete", {"name": name})
