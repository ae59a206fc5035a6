"""What a run under bubblewrap can and cannot reach: network, files, /tmp."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcp_server.config import Settings
from mcp_server.runtime.isolation import OUTPUT_FILE
from mcp_server.runtime.local import LocalRuntime
from tests.runtime.conftest import MakeRuntime
from tests.runtime.support import Events, sh, spec

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port on 127.0.0.1 of the host's network namespace; connections complete in the backlog."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as server:
        yield server.getsockname()[1]


def _connect(port: int) -> list[str]:
    script = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5); print('connected')"
    return [sys.executable, "-c", script]


async def test_a_sandboxed_run_has_no_network(make_runtime: MakeRuntime, listener: int) -> None:
    runtime = make_runtime("bwrap")
    events = Events(runtime)
    run = spec(_connect(listener))
    await runtime.start(run)
    exited = await events.wait(run.run_id)
    assert exited.exit_code == 1 and "ConnectionRefusedError" in runtime.read_logs(run.run_id, tail=4096)


async def test_a_sandboxed_run_that_asks_for_network_gets_it(make_runtime: MakeRuntime, listener: int) -> None:
    runtime = make_runtime("bwrap")
    events = Events(runtime)
    run = spec(_connect(listener), network=True)
    await runtime.start(run)
    exited = await events.wait(run.run_id)
    assert (exited.exit_code, exited.output) == (0, "connected")


@pytest.mark.parametrize("data_under_tmp", [True, False], ids=["data-dir-under-tmp", "data-dir-elsewhere"])
async def test_a_sandboxed_run_writes_only_its_work_dir(tmp_path: Path, scratch: Path, data_under_tmp: bool) -> None:
    data_dir = tmp_path if data_under_tmp else scratch
    runtime = LocalRuntime(Settings(data_dir=data_dir, isolation="bwrap"))
    events = Events(runtime)
    runs = Settings(data_dir=data_dir).runs_dir
    run = sh(
        f"""
        echo in-cwd > here.txt && echo cwd-ok
        echo x > {REPO}/escaped-{tmp_path.name} || echo repo-refused
        echo x > {runs}/escaped || echo runs-dir-refused
        echo x > {data_dir}/escaped || echo data-dir-refused
        echo x > /tmp/private && cat /tmp/private >/dev/null && echo tmp-ok
        echo done > "$KUBEGATE_OUTPUT"
        """
    )
    await runtime.start(run)
    exited = await events.wait(run.run_id)
    log = runtime.read_logs(run.run_id, tail=65536)
    assert (exited.exit_code, exited.output) == (0, "done")
    assert (runs / run.run_id / "work" / "here.txt").read_text() == "in-cwd\n"
    assert (runs / run.run_id / "work" / OUTPUT_FILE).exists()
    assert not (REPO / f"escaped-{tmp_path.name}").exists()
    assert not (runs / "escaped").exists() and not (data_dir / "escaped").exists()
    for line in ("cwd-ok", "repo-refused", "tmp-ok"):
        assert line in log
    if not data_under_tmp:
        # Under /tmp the paths exist only in the sandbox's private tmpfs, so writing "works" there.
        assert "runs-dir-refused" in log and "data-dir-refused" in log
    await runtime.close()


async def test_tmp_is_private_to_each_run(make_runtime: MakeRuntime) -> None:
    runtime = make_runtime("bwrap")
    events = Events(runtime)
    marker = f"/tmp/kubegate-private-{id(runtime)}"
    first = sh(f"echo secret > {marker} && echo written")
    await runtime.start(first)
    assert (await events.wait(first.run_id)).output == "written"
    second = sh(f"cat {marker} || echo absent")
    await runtime.start(second)
    assert (await events.wait(second.run_id)).output == "absent"
    assert not Path(marker).exists()


async def test_the_sandbox_has_its_own_pid_namespace(make_runtime: MakeRuntime) -> None:
    runtime = make_runtime("bwrap")
    events = Events(runtime)
    run = sh("ls /proc | grep -c '^[0-9]'")
    await runtime.start(run)
    exited = await events.wait(run.run_id)
    assert exited.output is not None and int(exited.output) <= 5
