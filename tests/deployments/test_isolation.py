"""A deployment is a hostile tenant's code: it sees neither the data dir nor the gateway, as a sandbox does not."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import anyio

from tests.deployments.support import HTTP_SERVER, create, wait_status
from tests.doors import Door
from tests.gateway import Gateway

PROBE = """
cat {db} >/dev/null 2>&1 && echo PROBE db-readable || echo PROBE db-hidden
ls {runs} >/dev/null 2>&1 && echo PROBE runs-visible || echo PROBE runs-hidden
python3 -c 'import socket; socket.create_connection(("127.0.0.1", {port}), 2)' 2>/dev/null \
  && echo PROBE gateway-reachable || echo PROBE gateway-unreachable
exec {server}
"""


async def test_an_app_sees_neither_the_data_dir_nor_the_gateway(rest: Door, dep_gateway: Gateway,
                                                                 dep_data_dir: Path, local_only: None) -> None:
    assert (dep_data_dir / "kubegate.db").exists() and (dep_data_dir / "runs").is_dir()  # there to be seen
    script = PROBE.format(db=dep_data_dir / "kubegate.db", runs=dep_data_dir / "runs",
                          port=urlsplit(dep_gateway.url).port, server=" ".join(HTTP_SERVER))
    created = await create(rest, image="busybox", port=9000, command=["sh", "-c", script])
    try:
        await wait_status(rest, created["name"], "Ready")
        with anyio.fail_after(30):
            while True:
                lines = (await rest.call("deployments_logs", {"name": created["name"]})).body["lines"]
                said = [line["text"].split(" ", 1)[1] for line in lines if line["text"].startswith("PROBE ")]
                if len(said) >= 3:
                    break
                await anyio.sleep(0.05)
        assert said == ["db-hidden", "runs-hidden", "gateway-unreachable"], said
    finally:
        await rest.call("deployments_delete", {"name": created["name"]})
