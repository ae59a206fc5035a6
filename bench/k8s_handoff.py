"""How much the Kubernetes runtime adds to one short run, measured against the fake cluster.

Baseline: spawning the same command as a local process and waiting for it. Measured: the
KubernetesRuntime path (namespace/Secret/Job creation over HTTP, the simulated Job controller
and kubelet, watch events back, log copy) from ``start()`` to the ``exited`` event. The fake
cluster validates every write against the OpenAPI schema, so this is an upper bound on the
gateway-side cost, not a prediction of a real cluster's scheduling latency.

    python -m bench.k8s_handoff [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bench._harness import report_ratio
from k8s.runtime import KubernetesRuntime
from k8s.sim import FakeCluster
from mcp_server.config import Settings
from mcp_server.runtime.base import RunSpec

NEEDS = ("fake-cluster",)

COMMAND = ["sh", "-c", "echo hello > $KUBEGATE_OUTPUT"]


async def _bare(runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        process = await asyncio.create_subprocess_exec("sh", "-c", "echo hello", stdout=asyncio.subprocess.PIPE)
        await process.communicate()
        times.append(time.perf_counter() - began)
    return times


async def _kubernetes(runs: int, data_dir: Path) -> list[float]:
    times = []
    async with FakeCluster() as cluster:
        settings = Settings(data_dir=data_dir, runtime="kubernetes", kubeconfig=cluster.kubeconfig_path)
        runtime = KubernetesRuntime(settings)
        events = runtime.events()
        try:
            for index in range(runs):
                spec = RunSpec(f"bench_{index}", "bench@example.com", "busybox", COMMAND, env={"X": "1"})
                began = time.perf_counter()
                await runtime.start(spec)
                async for event in events:
                    if event.run_id == spec.run_id and event.kind == "exited":
                        break
                times.append(time.perf_counter() - began)
        finally:
            await events.aclose()  # type: ignore[attr-defined]
            await runtime.close()
        assert cluster.invalid_writes == []
    return times


def measure_k8s_overhead(runs: int = 20) -> dict[str, float]:
    """Median seconds per run for a bare process and for the Kubernetes runtime, and their ratio."""
    with tempfile.TemporaryDirectory() as data_dir:
        bare = asyncio.run(_bare(runs))
        kube = asyncio.run(_kubernetes(runs, Path(data_dir)))
    result = {"bare_s": statistics.median(bare), "kubernetes_s": statistics.median(kube)}
    result["ratio"] = result["kubernetes_s"] / result["bare_s"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="5 runs: a fast look")
    opts = parser.parse_args()
    result = measure_k8s_overhead(5 if opts.quick else opts.runs)
    print(f"bare process      {result['bare_s'] * 1000:8.1f} ms/run (median)")
    print(f"kubernetes (sim)  {result['kubernetes_s'] * 1000:8.1f} ms/run (median)")
    print(f"ratio             {result['ratio']:8.1f}x")
    report_ratio("Kubernetes runtime (fake cluster), s per run", result["ratio"], "bare local process", better="lower")


if __name__ == "__main__":
    main()
