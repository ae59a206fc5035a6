"""Task latency and throughput on the local runtime, through REST on a real ``kubegate serve``.

Reports, in one run:
- create -> running and create -> completed, p50/p99, for ``true`` (sequential tasks); the
  client's send time against the runtime's own stamps in the SQLite file (same clock);
- throughput with 200 tasks submitted at once, and that none is lost or stuck;
- isolation overhead: the same command under the runtime's full sandbox plan (allow-list file
  system, no privilege) vs a bare `bwrap` call and a bare subprocess, in the same run.

    python bench/tasks.py [--samples 100] [--burst 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _harness import free_port, kubegate, median, mint_key, percentile, report_ratio  # noqa: E402

from mcp_server.config import Settings  # noqa: E402
from mcp_server.ids import parse  # noqa: E402
from mcp_server.runtime import containment, isolation  # noqa: E402
from mcp_server.runtime.base import RunSpec  # noqa: E402

TRIVIAL = {"name": "bench", "image": "alpine:3", "command": ["true"]}


def stamps(db: Path, task_id: str) -> tuple[str | None, str | None]:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT started_at, completed_at FROM tasks WHERE id = ?", (task_id,)).fetchone()
    return row[0], row[1]


async def wait_all(http: httpx.AsyncClient, ids: list[str]) -> list[dict[str, object]]:
    async def wait(task_id: str) -> dict[str, object]:
        body = {"method": "tasks/wait", "params": {"taskId": task_id, "timeoutSeconds": 120}}
        task: dict[str, object] = (await http.post("/api/mcp", json=body)).json()["result"]["task"]
        return task

    return list(await asyncio.gather(*(wait(i) for i in ids)))


async def latency(http: httpx.AsyncClient, db: Path, samples: int) -> tuple[list[float], list[float]]:
    to_running, to_completed = [], []
    for _ in range(samples):
        sent = time.time()
        task_id = (await http.post("/api/tasks", json=TRIVIAL)).json()["task"]["id"]
        await wait_all(http, [task_id])
        started, completed = stamps(db, task_id)
        assert started and completed, task_id
        to_running.append((parse(started).timestamp() - sent) * 1000)
        to_completed.append((parse(completed).timestamp() - sent) * 1000)
    return to_running, to_completed


async def burst(http: httpx.AsyncClient, count: int) -> tuple[float, dict[str, int]]:
    began = time.perf_counter()
    created = await asyncio.gather(*(http.post("/api/tasks", json=TRIVIAL) for _ in range(count)))
    ids = [r.json()["task"]["id"] for r in created]
    finished = await wait_all(http, ids)
    elapsed = time.perf_counter() - began
    outcome: dict[str, int] = {}
    for task in finished:
        outcome[str(task["status"])] = outcome.get(str(task["status"]), 0) + 1
    return elapsed, outcome


def isolation_overhead(runs: int = 50) -> tuple[float, float, float] | None:
    """ms per run of `true`: bare, under a bare `bwrap` call, under the runtime's full sandbox plan."""
    bwrap, _ = isolation.find_bwrap("auto")
    if bwrap is None:
        return None
    data_dir = Path(tempfile.mkdtemp(prefix="kg-bwrap-", dir="/var/tmp"))
    work = data_dir / "work"
    work.mkdir()
    confinement, _ = containment.confine(Settings(data_dir=data_dir))
    sandboxed = isolation.plan(RunSpec(run_id="b", owner="b", image="x", command=["true"]), work, confinement)
    bare_bwrap = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-all", "true"]

    # A root gateway runs its sandboxes as the run's own host uid (runuid): measured the same way. Every
    # command then gets an explicit uid (0 for the bare ones), because naming one makes Python fork
    # where it would vfork, which costs this (large) process more than bwrap itself: same path for all.
    uid = confinement.run_uids[0] if confinement.run_uids else None
    if uid is not None:
        os.chown(work, uid, uid)

    def timed(argv: list[str], as_uid: int | None = None) -> float:
        ids: dict[str, Any] = {} if uid is None else {"user": as_uid or 0, "group": as_uid or 0, "extra_groups": []}
        began = time.perf_counter()
        for _ in range(runs):
            subprocess.run(argv, check=True, cwd=work, env=sandboxed.env, **ids)
        return (time.perf_counter() - began) / runs * 1000

    return timed(["true"]), timed(bare_bwrap), timed(sandboxed.argv, uid)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="20 samples and a burst of 40: a fast look")
    opts = parser.parse_args()
    if opts.quick:
        opts.samples, opts.burst = 20, 40
    data_dir = Path(tempfile.mkdtemp(prefix="kg-bench-"))
    key = mint_key(data_dir)
    port = free_port()
    gateway = kubegate(data_dir, port, {"KUBEGATE_RATE_LIMIT_API_KEY": "1000000"})
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=300,
                                     headers={"Authorization": f"Bearer {key}"},
                                     limits=httpx.Limits(max_connections=64)) as http:
            runs_info = (await http.get("/healthz")).json().get("runs", "not reported")
            running, completed = await latency(http, data_dir / "kubegate.db", opts.samples)
            elapsed, outcome = await burst(http, opts.burst)
    finally:
        gateway.terminate()
        gateway.wait()
    print(f"create -> running   ms: p50 {median(running):6.1f}  p99 {percentile(running, 99):6.1f}  (target p50 < 25)")
    print(f"create -> completed ms: p50 {median(completed):6.1f}  p99 {percentile(completed, 99):6.1f}")
    print(f"{opts.burst} tasks at once: {elapsed:.2f} s, {opts.burst / elapsed:.0f} tasks/s, outcome {outcome}")
    lost = opts.burst - outcome.get("completed", 0)
    print(f"lost or stuck: {lost}")
    print(f"runs: {runs_info}")
    overhead = isolation_overhead()
    if overhead is None:
        print("isolation overhead: bubblewrap not usable here")
    else:
        bare, bwrap, sandbox = overhead
        print(f"isolation overhead per run of `true`: bare {bare:.1f} ms, bare bwrap {bwrap:.1f} ms, "
              f"kubegate sandbox {sandbox:.1f} ms ({sandbox / bwrap:.2f}x bare bwrap, {sandbox / bare:.1f}x bare)")
        report_ratio("run start in kubegate's sandbox, per `true`", sandbox / bwrap, "bare bwrap of `true`",
                     better="lower")
        report_ratio("run start in kubegate's sandbox vs no isolation", sandbox / bare, "bare subprocess of `true`",
                     better="lower")


if __name__ == "__main__":
    asyncio.run(main())
