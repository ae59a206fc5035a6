"""A root gateway without cgroups: each run's bubblewrap runs as a host uid of its own, so limits bind.

The gateway here is root (as in CI) with ``KUBEGATE_RUN_CGROUPS=off``: rlimits are the only limits,
and ``RLIMIT_NPROC`` binds only because the run's uid outside its namespace is not 0. The read-only
paths are the defaults (this test Python lives under /root, which no run uid may traverse), so the
tasks use the system's ``/usr/bin/python3``.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import anyio
import pytest

from mcp_server.runtime.base import SIZES
from mcp_server.runtime.local import LocalRuntime
from mcp_server.runtime.sandbox import DEFAULT_READONLY
from tests.runtime.conftest import MakeRuntime
from tests.runtime.support import WAIT, Events, sh, spec

PYTHON = "/usr/bin/python3"
FIRST, LAST = 200000, 265535

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(PYTHON),
                                reason="needs a root gateway and the system's python3")


def _runtime(make_runtime: MakeRuntime, **settings: str) -> LocalRuntime:
    runtime = make_runtime(run_cgroups="off", run_readonly_paths=",".join(DEFAULT_READONLY), **settings)
    assert runtime.containment["limits"].startswith("rlimits (processes capped per run"), runtime.containment
    return runtime


def _host_uids(marker: str) -> list[tuple[int, ...]]:
    """The real, effective, saved and fs uids outside, of each process whose command line holds ``marker``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        found.append(tuple(int(field) for field in line.split()[1:]))
    return found


async def _await_uids(marker: str) -> list[tuple[int, ...]]:
    with anyio.fail_after(WAIT):
        while not (found := _host_uids(marker)):
            await anyio.sleep(0.05)
    return found


async def test_healthz_says_processes_are_capped_per_run(make_runtime: MakeRuntime) -> None:
    limits = _runtime(make_runtime).containment["limits"]
    assert "NOT capped" not in limits and f"{FIRST}-{LAST}" in limits


async def test_a_small_task_cannot_start_more_processes_than_its_size_allows(make_runtime: MakeRuntime) -> None:
    runtime = _runtime(make_runtime)
    events = Events(runtime)
    fork = ("import os, time\nn = 0\ntry:\n    while n < 400:\n        if os.fork() == 0:\n"
            "            time.sleep(30); os._exit(0)\n        n += 1\nexcept OSError as e:\n"
            "    print('refused:', e.strerror)\nprint('forked', n)\n")
    run = spec(["sh", "-c", f'{PYTHON} -c "$1"; echo done', "sh", fork], size="small")
    await runtime.start(run)
    exited = await events.wait(run.run_id)
    log = runtime.read_logs(run.run_id, tail=1 << 16)
    assert exited.exit_code == 0 and "done" in log, log
    forked = int(log.split("forked")[-1].split()[0])
    assert forked < SIZES["small"].max_pids, log
    assert "refused: Resource temporarily unavailable" in log, log


async def test_each_run_has_a_host_uid_of_its_own_and_not_root(make_runtime: MakeRuntime) -> None:
    runtime = _runtime(make_runtime)
    markers = [f"{uuid.uuid4().int % 10**6 + 1000}.25" for _ in range(2)]
    runs = [sh(f"sleep {marker}") for marker in markers]
    for run in runs:
        await runtime.start(run)
    uids = []
    for marker in markers:
        found = await _await_uids(marker)
        for ids in found:
            assert len(set(ids)) == 1 and FIRST <= ids[0] <= LAST, found  # real = effective = saved = fs
        uids.append(found[0][0])
    assert uids[0] != uids[1]
    for run in runs:
        await runtime.remove(run.run_id)
    assert not any(_host_uids(marker) for marker in markers)


async def test_a_run_uid_cannot_read_the_database_the_key_or_another_run(
    make_runtime: MakeRuntime, data_dir: Path
) -> None:
    db, key = data_dir / "kubegate.db", data_dir / "login_state.key"
    for secret in (db, key):
        secret.write_text("key hashes, sessions, run secrets")
        secret.chmod(0o644)  # as SQLite creates a database under umask 022: the gateway must close it
    runtime = _runtime(make_runtime)
    events = Events(runtime)
    other = sh("echo other-secret > note; echo other-log-secret")
    await runtime.start(other)
    await events.wait(other.run_id)
    marker = f"{uuid.uuid4().int % 10**6 + 1000}.75"
    mine = sh(f"sleep {marker}")
    await runtime.start(mine)
    uid = (await _await_uids(marker))[0][0]
    other_dir = data_dir / "runs" / other.run_id
    probe = "\n".join(f"cat {path} 2>/dev/null && echo READ {path}" for path in (
        db, key, other_dir / "log", other_dir / "work" / "note")) + f"\nls {data_dir} {data_dir / 'runs'} " \
        f"{other_dir} 2>/dev/null && echo LISTED\necho probe-done"
    done = subprocess.run(["sh", "-c", probe], user=uid, group=uid, extra_groups=[], capture_output=True,
                          text=True, timeout=30, check=False)
    assert "probe-done" in done.stdout and "READ" not in done.stdout and "LISTED" not in done.stdout, done.stdout
    assert "secret" not in done.stdout
    assert not db.stat().st_mode & 0o077 and not key.stat().st_mode & 0o077
    await runtime.remove(mine.run_id)


async def test_delete_removes_what_a_run_uid_locked(make_runtime: MakeRuntime, data_dir: Path) -> None:
    runtime = _runtime(make_runtime)
    events = Events(runtime)
    run = sh("mkdir -p a/b/c && echo x > a/b/c/f && chmod 0 a/b/c a/b && chmod 500 a . && echo locked")
    await runtime.start(run)
    exited = await events.wait(run.run_id)
    assert exited.output == "locked"
    await runtime.remove(run.run_id)
    assert not (data_dir / "runs" / run.run_id).exists()


async def test_retention_removes_what_a_run_uid_locked(make_runtime: MakeRuntime, data_dir: Path) -> None:
    runtime = _runtime(make_runtime, run_retention="1s")
    events = Events(runtime)
    run = sh("mkdir -p a/b && echo x > a/b/f && chmod 0 a/b && chmod 500 a . && echo locked")
    await runtime.start(run)
    assert (await events.wait(run.run_id)).output == "locked"
    with anyio.fail_after(WAIT):
        while (data_dir / "runs" / run.run_id).exists():
            await anyio.sleep(0.1)


async def test_a_refused_uid_range_falls_back_and_says_so(make_runtime: MakeRuntime, data_dir: Path) -> None:
    """A read-only path the run uid cannot reach (this Python, under a 0700 /root) keeps runs uid 0 outside."""
    runtime = make_runtime(run_cgroups="off")  # the tests' read-only paths include this Python
    limits = runtime.containment["limits"]
    assert "processes NOT capped per run" in limits and "bwrap cannot build a sandbox as uid" in limits, limits
    assert data_dir.stat().st_mode & 0o777 == 0o700


async def test_the_range_can_be_turned_off(make_runtime: MakeRuntime) -> None:
    runtime = make_runtime(run_cgroups="off", run_uid_range="off",
                           run_readonly_paths=",".join(DEFAULT_READONLY))
    assert "KUBEGATE_RUN_UID_RANGE=off" in runtime.containment["limits"]


def test_claimed_uids_are_distinct_while_held_and_free_again_after(tmp_path: Path) -> None:
    from mcp_server.runtime import shimkit

    held = [shimkit.claim_uid(str(tmp_path), FIRST, 3) for _ in range(3)]
    assert len({uid for uid, _ in held}) == 3
    with pytest.raises(OSError, match="widen the range"):
        shimkit.claim_uid(str(tmp_path), FIRST, 3)
    os.close(held[0][1])
    again, fd = shimkit.claim_uid(str(tmp_path), FIRST, 3)
    assert again == held[0][0]
    for _, other in [*held[1:], (again, fd)]:
        os.close(other)
