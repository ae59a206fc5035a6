"""A sandbox holds as a task does: no network unless asked, no data dir, no other sandbox, no secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.doors import Door
from tests.gateway import Gateway
from tests.sandboxes.support import create, exec_ok

pytestmark = pytest.mark.usefixtures("local_only")


async def test_a_sandbox_sees_neither_the_data_dir_nor_another_sandbox(rest: Door, sbx_data_dir: Path,
                                                                        sbx_gateway: Gateway) -> None:
    a = (await create(rest, "iso-a", timeout="10m"))["id"]
    b = (await create(rest, "iso-b", timeout="10m"))["id"]
    try:
        await rest.call("sandboxes_write_file", {"sandboxId": b, "path": "secret.txt", "content": "b-only"})
        b_home = (await exec_ok(rest, b, "pwd"))["stdout"].strip()
        probe = (f"cat {b_home}/secret.txt; ls {sbx_data_dir}; cat {sbx_data_dir}/kubegate.db | head -c 16;"
                 f" ls {sbx_data_dir}/runs/{b}; ls /root")
        seen = await rest.call("sandboxes_exec", {"sandboxId": a, "command": ["sh", "-c", probe]})
        assert "b-only" not in seen.body["stdout"] and "SQLite" not in seen.body["stdout"]
        assert "agent.sock" not in seen.body["stdout"] and "kubegate.db" not in seen.body["stdout"]
        port = sbx_gateway.url.rsplit(":", 1)[1]
        reach = (f"import socket; s = socket.socket(); s.settimeout(2); print(s.connect_ex(('127.0.0.1', {port})))")
        out = await exec_ok(rest, a, f"python3 -c \"{reach}\"; cat /proc/net/dev | tail -n +3 | cut -d: -f1")
        lines = out["stdout"].split()
        assert lines[0] != "0", "the gateway's port is reachable from a sandbox without network"
        assert lines[1:] == ["lo"]
    finally:
        for sid in (a, b):
            await rest.call("sandboxes_delete", {"sandboxId": sid})


async def test_network_true_gives_an_interface_but_no_host_loopback(rest: Door, sbx_gateway: Gateway) -> None:
    outcome = await rest.call("sandboxes_create", {"name": "net", "image": "ubuntu", "network": True})
    assert outcome.ok, outcome.body
    sid = outcome.body["sandbox"]["id"]
    try:
        port = sbx_gateway.url.rsplit(":", 1)[1]
        reach = f"import socket; s = socket.socket(); s.settimeout(2); print(s.connect_ex(('127.0.0.1', {port})))"
        out = await exec_ok(rest, sid, f"python3 -c \"{reach}\"; cat /proc/net/dev | tail -n +3 | cut -d: -f1")
        lines = out["stdout"].split()
        assert lines[0] != "0", "the host's loopback is reachable from a sandbox with network"
        assert len(lines[1:]) >= 2
    finally:
        await rest.call("sandboxes_delete", {"sandboxId": sid})


async def test_a_sandbox_cannot_reach_another_sandboxs_agent(rest: Door, sbx_data_dir: Path) -> None:
    a = (await create(rest, "reach-a", timeout="10m"))["id"]
    b = (await create(rest, "reach-b", timeout="10m"))["id"]
    try:
        await exec_ok(rest, b, "true")  # b's agent is up
        sockets = sbx_data_dir / "runs" / b / "sockets"
        probe = ("import socket, sys\n"
                 "for name in ('agent.sock', 'port.sock'):\n"
                 "    s = socket.socket(socket.AF_UNIX)\n"
                 "    try:\n"
                 f"        s.connect('{sockets}/' + name)\n"
                 "        print('CONNECTED', name)\n"
                 "    except OSError as exc:\n"
                 "        print('refused', name, exc.errno)\n")
        await rest.call("sandboxes_write_file", {"sandboxId": a, "path": "probe.py", "content": probe})
        out = await exec_ok(rest, a, "python3 probe.py")
        assert "CONNECTED" not in out["stdout"] and out["stdout"].count("refused") == 2, out
    finally:
        for sid in (a, b):
            await rest.call("sandboxes_delete", {"sandboxId": sid})
