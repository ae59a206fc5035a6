"""The same confinement when the gateway is not root: the supervisor and bubblewrap run as uid 65534.

The plan is made as the runtime makes it (rootless, no cgroups: an unprivileged gateway may not
create them), the run dir handed to uid 65534, and the shim started as that user with the
system's Python, exactly as ``LocalRuntime`` starts it (``python -I -S -c BOOT``).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mcp_server.config import Settings
from mcp_server.runtime import containment, isolation, shim
from mcp_server.runtime.base import RunSpec
from mcp_server.runtime.rundir import RunDir, remove_tree
from tests.runtime.test_isolation import fenced, host_addresses

NOBODY = 65534
# Not the coverage-measured boot of tests/runtime/conftest.py: a shim running as uid 65534 can
# neither import root's coverage nor write root's data file. Taken at import, before the patch.
PLAIN_BOOT = shim.BOOT
SETPRIV = ["setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups"]


def _unprivileged_bwrap_works() -> bool:
    if os.geteuid() != 0 or shutil.which("setpriv") is None or shutil.which("bwrap") is None:
        return False
    probe = [*SETPRIV, "bwrap", "--unshare-all", "--unshare-user", "--ro-bind", "/usr", "/usr",
             "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
             "--", "true"]
    return subprocess.run(probe, capture_output=True, timeout=30, check=False).returncode == 0


pytestmark = pytest.mark.skipif(not _unprivileged_bwrap_works(),
                                reason="needs root to switch to uid 65534, and unprivileged user namespaces")


@pytest.fixture
def home(data_dir: Path) -> Iterator[Path]:
    """The test's data dir, owned by the unprivileged gateway user; a root-only secret beside it."""
    os.chown(data_dir, NOBODY, NOBODY)
    (data_dir / "runs").mkdir()
    os.chown(data_dir / "runs", NOBODY, NOBODY)
    secret = data_dir / "kubegate.db"
    secret.write_text("key_hash session secrets")
    os.chown(secret, NOBODY, NOBODY)
    secret.chmod(0o600)
    yield data_dir


def _run_as_nobody(home: Path, script: str, *, network: bool = False, **settings: Any) -> tuple[str, str, Path]:
    """Run ``script`` under a shim and bwrap running as uid 65534; answers (log, exit record, run dir)."""
    confinement, _ = containment.confine(Settings(data_dir=home, **settings))
    confinement = dataclasses.replace(confinement, rootless=True, run_uids=None)  # a non-root gateway has none
    run_dir = RunDir(home / "runs", f"run-{uuid.uuid4().hex[:8]}")
    spec = RunSpec(run_id=run_dir.path.name, owner="u", image="x", command=["sh", "-c", script], network=network)
    run_dir.create(isolation.plan(spec, run_dir.work, confinement), timeout=30, grace=1)
    log = run_dir.open_log()
    for top, _dirs, files in os.walk(run_dir.path):
        for path in (top, *(os.path.join(top, f) for f in files)):
            os.chown(path, NOBODY, NOBODY)
    try:
        subprocess.run([*SETPRIV, "/usr/bin/python3", "-I", "-S", "-c", PLAIN_BOOT, str(Path(shim.__file__).parent),
                        str(run_dir.path)], stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=60, check=True)
    finally:
        os.close(log)
    return run_dir.log.read_text(), (run_dir.path / shim.EXIT_FILE).read_text(), run_dir.path


def test_an_unprivileged_gateway_confines_runs_the_same_way(home: Path) -> None:
    name = f"escape-{uuid.uuid4().hex[:8]}"
    log, record, _ = _run_as_nobody(home, f"""
        id -u; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status
        mount -o remount,rw / 2>/dev/null && echo REMOUNTED
        echo x > /usr/{name} 2>/dev/null && echo WROTE-USR
        cat {home}/kubegate.db 2>/dev/null && echo READ-DB
        unshare -U -r true 2>/dev/null && echo NEW-USERNS
        echo probe-done
    """)
    assert '"reason": "completed"' in record
    assert "65534" in log and "CapEff:\t0000000000000000" in log and "NoNewPrivs:\t1" in log
    assert "probe-done" in log and not any(w in log for w in ("REMOUNTED", "WROTE", "READ-DB", "key_hash", "USERNS"))
    assert not Path(f"/usr/{name}").exists()


def test_an_unprivileged_gateway_gives_network_without_the_host_loopback(home: Path) -> None:
    if shutil.which("slirp4netns") is None:
        pytest.skip("slirp4netns is not installed")
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        probe = (f"for h in 127.0.0.1 10.0.2.2; do timeout 3 sh -c \"echo > /dev/tcp/$h/{port}\" 2>/dev/null"
                 f" && echo REACHED $h || echo unreachable $h; done")
        log, _, _ = _run_as_nobody(home, f"cat /proc/net/route; bash -c '{probe}'", network=True)
    assert "tap0\t00000000" in log and "REACHED" not in log and log.count("unreachable") == 2


def test_an_unprivileged_gateway_fences_off_the_hosts_own_addresses(home: Path) -> None:
    if shutil.which("slirp4netns") is None or not (addresses := host_addresses()):
        pytest.skip("slirp4netns is not installed, or the host has no address besides loopback")
    with socket.create_server(("0.0.0.0", 0)) as server:  # as a gateway bound to every address is
        port = server.getsockname()[1]
        probe = "; ".join(f"timeout 3 sh -c \"echo > /dev/tcp/{a}/{port}\" 2>/dev/null && echo REACHED {a}"
                          f" || echo unreachable {a}" for a in addresses)
        log, _, _ = _run_as_nobody(home, f"cat /proc/net/route; bash -c '{probe}'", network=True)
        server.setblocking(False)
        with pytest.raises(BlockingIOError):
            server.accept()
    assert "tap0\t00000000" in log and "REACHED" not in log and log.count("unreachable") == len(addresses), log
    assert all(fenced(log, a) for a in addresses) and "fencing" not in log, log


@pytest.mark.parametrize("attack", [
    "mkdir d; for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do head -c 1000000 /dev/zero > d/f$i;"
    " done; chmod 000 d; sleep 60",
    "exec 3>hidden; rm hidden; for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do"
    " head -c 1000000 /dev/zero >&3; done; sleep 60",
])
def test_an_unprivileged_gateway_holds_a_run_to_its_disk_allowance(home: Path, attack: str) -> None:
    log, record, _ = _run_as_nobody(home, attack, run_disk_bytes=8 << 20, run_max_file_bytes=64 << 20)
    assert '"reason": "disk_limit"' in record and '"exit_code": 137' in record, (record, log)
    assert "was stopped because its work dir holds" in log, log


def test_delete_as_an_unprivileged_gateway_removes_a_run_that_locked_its_directories(home: Path) -> None:
    _, record, run_path = _run_as_nobody(home, "mkdir -p a/b/c && echo x > a/b/c/f && chmod 0 a/b/c a/b && "
                                               "chmod 500 a . && echo locked")
    assert '"reason": "completed"' in record
    left = _remove_as_nobody(run_path)
    assert left == [] and not run_path.exists()


def _remove_as_nobody(path: Path) -> list[str]:
    """``remove_tree`` in a child process running as uid 65534 (as an unprivileged gateway would)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)
            os.write(write, "\n".join(remove_tree(path)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        out = pipe.read().decode()
    os.waitpid(pid, 0)
    return [line for line in out.splitlines() if line]
