"""What the sandbox and deployment services share: the runtime part they need, their URLs, undoing a create."""

from __future__ import annotations

import pytest

from mcp_server.config import Settings
from mcp_server.engine.workloads import public_url, removed_on_failure, required
from mcp_server.errors import Unavailable


def test_a_runtime_without_the_part_says_which_runtime_and_the_way_out() -> None:
    assert required("apps", "local", "deployments") == "apps"
    with pytest.raises(Unavailable) as caught:
        required(None, "kubernetes", "sandboxes")
    assert caught.value.message == \
        "The kubernetes runtime cannot run sandboxes yet; use KUBEGATE_RUNTIME=local"


def test_a_workload_is_served_on_the_gateways_public_scheme_and_port() -> None:
    assert public_url(Settings(public_url="https://gw.example.test:8443"), "app-1.apps.example.test") == \
        "https://app-1.apps.example.test:8443"
    assert public_url(Settings(public_url="https://gw.example.test"), "sb.sandboxes.localhost") == \
        "https://sb.sandboxes.localhost"


async def test_a_create_the_runtime_refuses_leaves_no_row_and_the_caller_gets_the_error() -> None:
    rows = {"app-1"}

    async def remove() -> None:
        rows.discard("app-1")

    with pytest.raises(OSError, match="no image"):
        async with removed_on_failure(remove):
            raise OSError("no image")
    assert rows == set()
    rows.add("app-2")
    async with removed_on_failure(remove):
        pass  # started: the row stays
    assert rows == {"app-2"}
