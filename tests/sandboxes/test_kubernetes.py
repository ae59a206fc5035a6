"""Sandboxes on the Kubernetes runtime: refused, clearly, until it runs them (README, Sandboxes).

The fake cluster already serves what they will need (Services, a Job's moving deadline,
``pods/exec``: tests/k8s/sim), and ``KubeClient.exec`` drives it; the runtime does not yet.
"""

from __future__ import annotations

import pytest

from tests.doors import Door


async def test_creating_a_sandbox_on_kubernetes_is_a_clear_503_and_leaves_nothing(
        door: Door, runtime_env: dict[str, str]) -> None:
    if runtime_env["KUBEGATE_RUNTIME"] != "kubernetes":
        pytest.skip("the local runtime runs sandboxes (the other tests here)")
    refused = await door.call("sandboxes_create", {"name": "dev-env", "image": "ubuntu:22.04"})
    assert refused.error_status == 503
    assert set(refused.body) >= {"error", "message", "status"}
    assert "KUBEGATE_RUNTIME=local" in refused.body["message"]
    listed = await door.call("sandboxes_list", {})
    assert listed.ok and listed.body["sandboxes"] == []
