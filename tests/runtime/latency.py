"""Latency of LocalRuntime for ``true``: ``python -m tests.runtime.latency [bwrap|none ...] [--runs N]``.

Not a test: it prints the median and 90th percentile of start->started and start->exited, measured
through the public API in one process, runs one after the other, next to a baseline taken at the
same time (a bare ``python -I -S -c pass``, the shim's floor, and a bare ``bwrap ... true``), since
the machine's load moves every number.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mcp_server.config import Settings
from mcp_server.runtime.local import LocalRuntime
from tests.runtime.support import Events, spec


async def measure(isolation: str, runs: int) -> tuple[list[float], list[float]]:
    with tempfile.TemporaryDirectory(prefix="kubegate-latency-") as data_dir:
        runtime = LocalRuntime(Settings(data_dir=Path(data_dir), isolation=isolation))  # type: ignore[arg-type]
        events = Events(runtime)
        started, exited = [], []
        for _ in range(runs):
            run = spec(["true"])
            began = time.perf_counter()
            await runtime.start(run)
            await events.wait(run.run_id, "started")
            started.append(time.perf_counter() - began)
            assert (await events.wait(run.run_id)).exit_code == 0
            exited.append(time.perf_counter() - began)
        await runtime.close()
    return started, exited


def _summary(samples: list[float]) -> str:
    ms = sorted(sample * 1000 for sample in samples)
    return f"p50 {statistics.median(ms):6.2f} ms  p90 {ms[int(len(ms) * 0.9)]:6.2f} ms"


def baseline(runs: int) -> None:
    python = [sys.executable, "-I", "-S", "-c", "pass"]
    bwrap = ["bwrap", "--unshare-all", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "true"]
    for name, argv in (("python -I -S", python), ("bare bwrap", bwrap)):
        samples = []
        for _ in range(runs):
            began = time.perf_counter()
            subprocess.run(argv, check=True)
            samples.append(time.perf_counter() - began)
        print(f"baseline {name:13} {_summary(samples)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("isolation", nargs="*", default=["bwrap", "none"])
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    baseline(args.runs)
    for isolation in args.isolation:
        started, exited = asyncio.run(measure(isolation, args.runs))
        print(f"{isolation:5}  start->started {_summary(started)}   start->exited {_summary(exited)}")


if __name__ == "__main__":
    main()
