"""What namespace reconciliation adds to a Kubernetes start once the namespace is verified.

Two runtimes against one fake cluster (schema validation off, so the numbers are kubegate's;
the node takes no Pods, so no process start blurs them): the real one, and a baseline whose
``NamespaceGuard.ensure`` does nothing after its namespace was made once, i.e. a start with no
policy check at all. Starts alternate between the two, each going first in turn, so a noisy
neighbour moves both alike. Printed: p50/p99 of ``start()`` for each, the difference of the
p50s (the budget is 5 ms), the first start in a new namespace (namespace and whole policy
created) and ``ensure()`` alone on a verified namespace.

    python -m bench.k8s_namespace [--runs 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from k8s import manifests
from k8s.runtime import KubernetesRuntime
from k8s.sim import FakeCluster
from mcp_server.config import Settings
from mcp_server.runtime.base import RunEvent, RunSpec

OWNERS = {"checked": "checked@example.com", "bare": "bare@example.com"}


def _spec(tag: str, index: int) -> RunSpec:
    return RunSpec(f"bench_{tag}_{index}", OWNERS.get(tag, "warm@example.com"), "busybox", ["true"])


async def _drain(events: AsyncIterator[RunEvent]) -> None:
    async for _ in events:
        pass


def _p(values: list[float], pct: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))] * 1000


async def _measure(runs: int, data: Path) -> None:
    async with FakeCluster(validate=False) as cluster:
        cluster.kubelet.node.cpu = 0.0  # Pods stay Pending: start() alone is measured
        settings = Settings(data_dir=data, runtime="kubernetes", kubeconfig=cluster.kubeconfig_path,
                            quota="pods=100000", start_timeout=3600)
        checked, bare = KubernetesRuntime(settings), KubernetesRuntime(settings)
        drains = [asyncio.create_task(_drain(rt.events())) for rt in (checked, bare)]
        try:
            await checked.start(_spec("warm", 0))  # connects, lists, builds the client's models once
            began = time.perf_counter()
            await checked.start(_spec("checked", -1))
            first = time.perf_counter() - began
            await bare.start(_spec("bare", -1))

            async def nothing(*_: object) -> None:
                return None
            bare.guard.ensure = nothing  # type: ignore[method-assign]
            times: dict[str, list[float]] = {"checked": [], "bare": []}
            pair = [("checked", checked), ("bare", bare)]
            for index in range(runs):
                for name, runtime in pair if index % 2 else reversed(pair):
                    began = time.perf_counter()
                    await runtime.start(_spec(name, index))
                    times[name].append(time.perf_counter() - began)
            ensure = []
            namespace = manifests.namespace_name(settings.namespace_prefix, OWNERS["checked"])
            for _ in range(1000):
                began = time.perf_counter()
                await checked.guard.ensure(namespace, OWNERS["checked"], "checked-example.com")
                ensure.append(time.perf_counter() - began)
        finally:
            for task in drains:
                task.cancel()
            await checked.close()
            await bare.close()
    for name in ("checked", "bare"):
        print(f"start() {name:8} p50 {_p(times[name], 50):7.2f} ms   p99 {_p(times[name], 99):7.2f} ms")
    added = _p(times["checked"], 50) - _p(times["bare"], 50)
    print(f"added by reconciliation (p50 difference) {added:+.2f} ms   budget 5 ms: {'met' if added < 5 else 'MISSED'}")
    print(f"first start (namespace + policy created) {first * 1000:7.2f} ms")
    print(f"ensure() on a verified namespace        {statistics.median(ensure) * 1e6:7.2f} µs (median)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=200)
    with tempfile.TemporaryDirectory(prefix="kubegate-bench-") as tmp:
        asyncio.run(_measure(parser.parse_args().runs, Path(tmp)))


if __name__ == "__main__":
    main()
