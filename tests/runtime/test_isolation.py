"""A hostile run under bubblewrap: each test is an attack a tenant could try, and a check that it failed.

Every data dir here is under /var/lib/kubegate-tests, not /tmp, as a real install's is (a sandbox's
private /tmp would hide a data dir under /tmp and make these tests pass for the wrong reason).
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from mcp_server.config import Settings
from mcp_server.errors import Unavailable
from mcp_server.runtime import containment, isolation
from mcp_server.runtime.local import LocalRuntime
from tests.processes import process_alive
from tests.runtime.conftest import MakeRuntime
from tests.runtime.support import Events, sh

PY = sys.executable


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port on 127.0.0.1 of the host's network namespace, as the gateway's own port is."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as server:
        yield server.getsockname()[1]


async def _run(runtime: LocalRuntime, script: str, **fields: object) -> tuple[str, int | None]:
    events = Events(runtime)
    run = sh(script, **fields)
    await runtime.start(run)
    exited = await events.wait(run.run_id)
    return runtime.read_logs(run.run_id, tail=1 << 20), exited.exit_code


async def test_a_run_has_no_privilege_whatever_the_gateway_uid(make_runtime: MakeRuntime) -> None:
    log, _ = await _run(make_runtime(), f"""
        echo "uid=$(id -u)"
        grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs)' /proc/self/status
        mount -o remount,rw / 2>/dev/null && echo REMOUNTED-ROOT
        mount -o remount,rw /usr 2>/dev/null && echo REMOUNTED-USR
        umount /tmp 2>/dev/null && echo UNMOUNTED-TMP
        unshare -U -r true 2>/dev/null && echo NEW-USERNS
        {PY} -c 'import os; os.chroot("/")' 2>/dev/null && echo CHROOTED
        {PY} -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, 1)' 2>/dev/null && echo RAW-SOCKET
        {PY} -c 'import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW)' 2>/dev/null && echo PACKET-SOCKET
        echo probe-done
    """)
    assert "probe-done" in log
    assert "uid=65534" in log
    for line in ("CapEff:\t0000000000000000", "CapPrm:\t0000000000000000", "CapBnd:\t0000000000000000",
                 "NoNewPrivs:\t1"):
        assert line in log
    for escape in ("REMOUNTED", "UNMOUNTED", "NEW-USERNS", "CHROOTED", "RAW-SOCKET", "PACKET-SOCKET"):
        assert escape not in log


async def test_setuid_binaries_give_no_privilege(make_runtime: MakeRuntime) -> None:
    su = next((p for p in ("/usr/bin/su", "/usr/bin/passwd", "/usr/bin/mount") if Path(p).exists()), None)
    if su is None or not os.stat(su).st_mode & 0o4000:
        pytest.skip("no setuid binary on this host")
    log, _ = await _run(make_runtime(), f"{PY} -c 'import os; print(\"euid\", os.geteuid())'; "
                                        f"{su} --help >/dev/null 2>&1; echo exit=$?; "
                                        f"unshare -r id 2>&1 | head -1; echo probe-done")
    assert "euid 65534" in log and "probe-done" in log and "uid=0" not in log


async def test_remount_and_write_outside_leaves_nothing_on_the_host(make_runtime: MakeRuntime, data_dir: Path) -> None:
    name = f"escape-{uuid.uuid4().hex[:8]}"
    targets = [Path("/usr") / name, Path("/etc") / name, data_dir / name, Path("/var/lib/kubegate-tests") / name]
    script = "; ".join(f"mount -o remount,rw {t.parent} 2>/dev/null; echo x > {t} 2>/dev/null" for t in targets)
    log, _ = await _run(make_runtime(), script + "; echo x > /escape 2>/dev/null; echo probe-done")
    assert "probe-done" in log
    for target in targets:
        assert not target.exists(), f"a run wrote {target} on the host"


async def test_a_run_cannot_read_the_gateway_secrets_or_another_run(
    make_runtime: MakeRuntime, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBEGATE_OIDC_CLIENT_SECRET", "gateway-env-secret")
    runtime = make_runtime()
    (data_dir / "kubegate.db").write_text("SQLite format 3 key_hash session secrets")
    (data_dir / "login_state.key").write_text("login-state-secret")
    victim_log, _ = await _run(runtime, "echo victim-secret-log; echo victim-file > mine.txt")
    victim = next(p for p in (data_dir / "runs").iterdir() if p.is_dir() and (p / "work" / "mine.txt").exists())
    secrets = [data_dir / "kubegate.db", data_dir / "login_state.key", victim / "log", victim / "work" / "mine.txt",
               Path("/etc/shadow"), Path("/root/.bash_history"), Path.home() / ".kube" / "config"]
    script = "; ".join(f"cat {p} 2>/dev/null" for p in secrets)
    log, _ = await _run(runtime, f"""
        {script}
        ls /root /home /run /var/run /var/lib /sys 2>/dev/null | head -5
        cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n'
        ls /proc | grep -c '^[0-9]'
        echo probe-done
    """)
    assert "probe-done" in log and "victim-secret-log" in victim_log
    for secret in ("key_hash", "login-state-secret", "victim-secret-log", "victim-file", "gateway-env-secret"):
        assert secret not in log
    assert "root:" not in log.replace("/root:", "")  # /etc/shadow is masked
    assert int(log.split("probe-done")[0].strip().splitlines()[-1]) <= 6  # a private /proc: only the run's pids


async def test_host_unix_sockets_are_out_of_reach_without_network(make_runtime: MakeRuntime, data_dir: Path) -> None:
    path_sock = socket.socket(socket.AF_UNIX)
    host_path = Path("/run") / f"kubegate-test-{uuid.uuid4().hex[:8]}.sock"
    path_sock.bind(str(host_path))
    path_sock.listen()
    abstract = socket.socket(socket.AF_UNIX)
    name = f"kubegate-test-{uuid.uuid4().hex[:8]}"
    abstract.bind("\0" + name)
    abstract.listen()
    try:
        probe = ("import socket,sys\nfor a in sys.argv[1:]:\n s=socket.socket(socket.AF_UNIX)\n try:\n"
                 "  s.connect(a.replace('@', chr(0))); print('REACHED', a)\n except OSError as e: print('refused', a)")
        log, _ = await _run(make_runtime(), f"{PY} -c \"{probe}\" {host_path} @{name}; echo probe-done")
    finally:
        path_sock.close()
        abstract.close()
        host_path.unlink()
    assert "probe-done" in log and "REACHED" not in log and log.count("refused") == 2


def _connect_script(*addresses: str) -> str:
    probe = ("import socket,sys\nfor a in sys.argv[1:]:\n h,p=a.rsplit(':',1)\n"
             " try:\n  socket.create_connection((h,int(p)),timeout=3); print('REACHED',a)\n"
             " except OSError as e: print('unreachable',a,e.errno)")
    return f"{PY} -c \"{probe}\" {' '.join(addresses)}"


async def test_without_network_the_gateway_port_is_unreachable(make_runtime: MakeRuntime, listener: int) -> None:
    log, _ = await _run(make_runtime(), _connect_script(f"127.0.0.1:{listener}") + "; cat /proc/net/dev; echo done")
    assert "unreachable" in log and "REACHED" not in log
    assert "tap0" not in log and "eth0" not in log


async def test_with_network_the_run_has_its_own_namespace_and_no_host_loopback(
    make_runtime: MakeRuntime, listener: int
) -> None:
    runtime = make_runtime()
    if runtime.containment["network"].startswith("none"):
        pytest.skip("slirp4netns is not installed")
    log, _ = await _run(runtime, "cat /proc/net/route; " + _connect_script(
        f"127.0.0.1:{listener}", f"10.0.2.2:{listener}") + "; echo done", network=True)
    assert "tap0\t00000000" in log  # a default route through slirp4netns's tap device
    assert "REACHED" not in log and log.count("unreachable") == 2


def host_addresses() -> list[str]:
    """The host's own IPv4 addresses other than loopback (the kernel's LOCAL routes)."""
    lines = Path("/proc/net/fib_trie").read_text().splitlines()
    found = [lines[i - 1].split()[-1] for i, line in enumerate(lines) if line.strip() == "/32 host LOCAL"]
    return sorted({a for a in found if not a.startswith("127.")})


def fenced(route_table: str, address: str) -> bool:
    """Whether ``/proc/net/route`` (as the run saw it) holds a reject route for ``address``."""
    destination = socket.inet_aton(address)[::-1].hex().upper()
    return any(line.split()[:2] == ["*", destination] for line in route_table.splitlines())


async def test_with_network_the_host_is_unreachable_on_its_own_addresses(make_runtime: MakeRuntime) -> None:
    runtime = make_runtime()
    if runtime.containment["network"].startswith("none"):
        pytest.skip("slirp4netns is not installed")
    addresses = host_addresses()
    if not addresses:
        pytest.skip("this host has no address besides loopback")
    # As a gateway bound to 0.0.0.0 is: reachable on every address of the host.
    with socket.create_server(("0.0.0.0", 0), backlog=16) as server:
        port = server.getsockname()[1]
        log, _ = await _run(runtime, "cat /proc/net/route; " + _connect_script(*(f"{a}:{port}" for a in addresses))
                            + "; echo done", network=True)
        server.setblocking(False)
        with pytest.raises(BlockingIOError):
            server.accept()  # nothing got through
    assert "done" in log and "REACHED" not in log and log.count("unreachable") == len(addresses), log
    assert "tap0\t00000000" in log and all(fenced(log, a) for a in addresses), log  # slirp is up, and fenced


@pytest.mark.parametrize("attack", [
    # Many files, each well under the per-file cap, in a directory the run then locks.
    "mkdir d; i=0; while [ $i -lt 40 ]; do head -c 1000000 /dev/zero > d/f$i || exit 3; i=$((i+1)); done;"
    " chmod 000 d; sleep 60",
    # One file written through a descriptor after it was deleted: no walk of the work dir finds it.
    "exec 3>hidden; rm hidden; i=0; while [ $i -lt 40 ]; do head -c 1000000 /dev/zero >&3 || exit 3;"
    " i=$((i+1)); done; sleep 60",
    # Inodes are disk too.
    "mkdir d; i=0; while [ $i -lt 3000 ]; do : > d/f$i; i=$((i+1)); done; sleep 60",
])
async def test_a_work_dir_past_its_allowance_in_all_fails_with_disk_limit(make_runtime: MakeRuntime,
                                                                        attack: str) -> None:
    runtime = make_runtime(run_max_file_bytes=64 << 20, run_disk_bytes=16 << 20, run_disk_files=1000)
    events = Events(runtime)
    run = sh(attack, timeout_seconds=120)
    await runtime.start(run)
    exited = await events.wait(run.run_id)
    log = runtime.read_logs(run.run_id, tail=1 << 20)
    # Stopped while it still wrote (or slept), not by its timeout, and told why.
    assert (exited.exit_code, exited.reason) == (137, "disk_limit"), log
    assert exited.message is not None and "KUBEGATE_RUN_DISK_BYTES" in exited.message
    assert "was stopped because its work dir holds" in log, log


async def test_a_work_dir_within_its_allowance_runs_to_the_end(make_runtime: MakeRuntime) -> None:
    runtime = make_runtime(run_max_file_bytes=8 << 20, run_disk_bytes=16 << 20, run_disk_files=1000)
    log, code = await _run(runtime, "head -c 4000000 /dev/zero > a; sleep 1; echo fine")
    assert code == 0 and "fine" in log and "stopped" not in log, log


async def test_tmp_is_private_and_size_capped(make_runtime: MakeRuntime) -> None:
    runtime = make_runtime(run_tmp_bytes=4 << 20)
    log, _ = await _run(runtime, """
        head -c 50000000 /dev/zero > /tmp/flood 2>/dev/null; echo "tmp=$(stat -c %s /tmp/flood)"
        head -c 50000000 /dev/zero > /dev/shm/flood 2>/dev/null; echo "shm=$(stat -c %s /dev/shm/flood)"
        echo x > /dev/flood 2>/dev/null && echo DEV-WRITABLE
        echo probe-done
    """)
    sizes = dict(line.split("=") for line in log.splitlines() if line.startswith(("tmp=", "shm=")))
    assert int(sizes["tmp"]) <= 4 << 20 and int(sizes["shm"]) <= 4 << 20
    assert "DEV-WRITABLE" not in log and "probe-done" in log
    second, _ = await _run(runtime, "cat /tmp/flood 2>/dev/null | wc -c")
    assert second.strip() == "0"


async def test_a_log_flood_keeps_the_tail_and_says_the_head_was_dropped(make_runtime: MakeRuntime) -> None:
    runtime = make_runtime(run_log_bytes=64 * 1024)
    events = Events(runtime)
    run = sh("echo the-first-line; yes 'flooding the log' | head -c 5000000; echo; echo the-last-line")
    await runtime.start(run)
    exited = await events.wait(run.run_id)
    log = runtime.read_logs(run.run_id, tail=1 << 20)
    assert exited.exit_code == 0 and exited.output == "the-last-line"
    assert len(log.encode()) <= 64 * 1024
    assert log.startswith("[kubegate: this log passed its cap of 65536 bytes") and "were dropped" in log
    assert "the-first-line" not in log and log.rstrip().endswith("the-last-line")


async def test_processes_are_bounded_per_run(make_runtime: MakeRuntime) -> None:
    runtime = make_runtime()
    log, _ = await _run(runtime, f"""{PY} -c '
import os, time
n = 0
try:
    while n < 400:
        if os.fork() == 0:
            time.sleep(30); os._exit(0)
        n += 1
except OSError as e:
    print("fork refused after", n)
print("forked", n)
'""", size="small")
    forked = int(log.split("forked")[-1].split()[0])
    assert forked < 256, log


async def test_a_timeout_kills_everything_the_run_started(make_runtime: MakeRuntime, data_dir: Path) -> None:
    runtime = make_runtime()
    events = Events(runtime)
    marker = f"{uuid.uuid4().int % 10**6 + 1000}.5"
    run = sh(f"setsid sleep {marker} & (sleep {marker} &) ; sleep {marker}", timeout_seconds=1.0)
    await runtime.start(run)
    exited = await events.wait(run.run_id)
    assert exited.reason == "timeout"
    assert not process_alive(marker)
    limits = runtime.containment["limits"]
    if limits.startswith("cgroup"):
        assert not any(Path(d).exists() for d in runtime._cgroups.dirs(run.run_id))  # type: ignore[union-attr]


def test_healthz_says_when_a_root_gateway_without_cgroups_cannot_cap_processes() -> None:
    """RLIMIT_NPROC does not bind a run whose uid is root outside its namespace: say so, not "rlimits"."""
    root = isolation.Confinement("bwrap", rootless=False)
    assert "NOT capped" in containment.describe(root, None)["limits"]
    assert containment.describe(dataclasses.replace(root, rootless=True), None)["limits"] == "rlimits"


async def test_auto_without_bubblewrap_refuses_runs_and_says_how_to_fix_it(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(data_dir))
    runtime = LocalRuntime(Settings(data_dir=data_dir, isolation="auto"))
    assert not runtime.isolated and runtime.containment["isolation"] == "unavailable"
    assert runtime.refusal is not None
    assert "install bubblewrap" in runtime.refusal and "KUBEGATE_ISOLATION=none" in runtime.refusal
    with pytest.raises(Unavailable, match="KUBEGATE_ISOLATION=none"):
        await runtime.start(sh("echo ran unconfined"))
    assert not any((data_dir / "runs").glob("*/log"))
    await runtime.close()


async def test_finished_runs_files_are_removed_after_the_retention(make_runtime: MakeRuntime, data_dir: Path) -> None:
    runtime = make_runtime(run_retention="1s")
    log, code = await _run(runtime, "echo kept-for-a-second")
    assert code == 0 and "kept-for-a-second" in log
    runs = data_dir / "runs"
    with anyio.fail_after(15):
        while any(p.is_dir() for p in runs.iterdir()):
            await anyio.sleep(0.1)


async def test_a_restarted_runtime_removes_runs_that_outlived_the_retention(
    make_runtime: MakeRuntime, data_dir: Path
) -> None:
    events = Events(first := make_runtime())
    old, recent = sh("echo old"), sh("echo recent")
    for run in (old, recent):
        await first.start(run)
        await events.wait(run.run_id)
    two_hours_ago = time.time() - 7200
    os.utime(data_dir / "runs" / old.run_id / "exit.json", (two_hours_ago, two_hours_ago))
    await first.close()
    second = make_runtime(run_retention="1h")
    await second.recover([])
    with anyio.fail_after(15):
        while (data_dir / "runs" / old.run_id).exists():
            await anyio.sleep(0.05)
    assert (data_dir / "runs" / recent.run_id / "log").exists()
