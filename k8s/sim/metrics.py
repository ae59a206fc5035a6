"""``metrics.k8s.io``: PodMetrics measured from the simulated containers' processes, as metrics-server reports them.

CPU is the average rate since the container started (metrics-server reports a rate over its
scrape window) in nanocores; memory is the resident set of the container's process group, in
KiB (metrics-server reports the working set). A cluster may leave the API unserved
(``FakeCluster.metrics_served = False``), and then answers 404 as a cluster without
metrics-server does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from k8s.sim.containers import Container
from k8s.sim.store import Obj, Store, now

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def usage(container: Container) -> tuple[float, float, int]:
    """(CPU seconds, seconds alive, resident bytes) of the processes in the container's process group."""
    if container.process is None or container.done:
        return 0.0, 0.0, 0
    group, ticks, pages, began = container.process.pid, 0, 0, 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            if int(fields[2]) == group:
                ticks += int(fields[11]) + int(fields[12])
                pages += int((entry / "statm").read_text().split()[1])
                if int(entry.name) == group:
                    began = int(fields[19])
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we read it
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return ticks / _TICKS, max(0.0, uptime - began / _TICKS), pages * _PAGE


def pod_metrics(store: Store, running: Callable[[str], Mapping[str, Container]], namespace: str,
                selector: str | None) -> Obj:
    items = []
    for pod in store.list("pods", namespace, selector):
        containers = running(pod["metadata"]["uid"])
        if not containers:
            continue
        measured = []
        for name, container in containers.items():
            seconds, alive, rss = usage(container)
            rate = seconds / max(1.0, alive)
            measured.append({"name": name, "usage": {"cpu": f"{int(rate * 1e9)}n", "memory": f"{rss // 1024}Ki"}})
        meta = pod["metadata"]
        items.append({"kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
                      "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                                   "labels": meta.get("labels") or {}, "creationTimestamp": now()},
                      "timestamp": now(), "window": "15s", "containers": measured})
    return {"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": items}
