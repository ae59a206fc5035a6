"""Deployments on the Kubernetes runtime (fake cluster): what kubegate adds to create -> Ready.

Two ways to the same app in one cluster, alternating, each going first in turn: kubegate's
``KubernetesApps.apply`` until its ``Ready`` event (namespace check, Deployment at 0 replicas,
Secret, Service, NetworkPolicy, Ingress, scale, then the watches), and a bare baseline that
creates the very same Deployment manifest (with its replicas, env inline) through the same
client and waits on the store until the Deployment reports the replica ready. Both wait for the
same readiness probe (every 2 s), so the difference of the p50s is kubegate's overhead.

    python -m bench.k8s_deployments [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from k8s import deployments
from k8s.client import KubeClient
from k8s.manifests import namespace_name
from k8s.runtime import KubernetesRuntime
from k8s.sim import FakeCluster
from mcp_server.config import Settings
from mcp_server.runtime.apps import AppEvent, AppSpec

APP = ("import http.server, sys\n"
       "class H(http.server.BaseHTTPRequestHandler):\n"
       "    def do_GET(self):\n"
       "        self.send_response(200); self.end_headers()\n"
       "    def log_message(self, *a): pass\n"
       "http.server.ThreadingHTTPServer(('0.0.0.0', int(sys.argv[1])), H).serve_forever()\n")


def _spec(name: str, port: int) -> AppSpec:
    return AppSpec(name=name, owner="bench@example.com", image="python:3.12-slim", port=port,
                   command=(sys.executable, "-c", APP, str(port)), env={"MODE": "bench"})


async def _kubegate(runtime: KubernetesRuntime, queue: asyncio.Queue[AppEvent], spec: AppSpec) -> float:
    began = time.perf_counter()
    await runtime.apps.apply(spec)
    while True:
        event = await queue.get()
        if event.name == spec.name and event.status is not None and event.status.phase == "Ready":
            return time.perf_counter() - began


async def _bare(cluster: FakeCluster, kube: KubeClient, spec: AppSpec, namespace: str) -> float:
    manifest = deployments.deployment(spec, namespace)
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": key, "value": value} for key, value in spec.env.items()]
    began = time.perf_counter()
    await kube.create(manifest)

    def ready() -> bool:
        found = [d for d in cluster.objects("deployments") if d["metadata"]["name"] == manifest["metadata"]["name"]]
        return bool(found) and found[0].get("status", {}).get("readyReplicas") == 1
    await cluster.wait_until(ready, timeout=120)
    return time.perf_counter() - began


async def _measure(runs: int, data: Path) -> None:
    async with FakeCluster(validate=False) as cluster:
        settings = Settings(data_dir=data, runtime="kubernetes", kubeconfig=cluster.kubeconfig_path,
                            quota="pods=1000,requests.cpu=100,limits.cpu=100,requests.memory=100Gi,"
                                  "limits.memory=100Gi,requests.ephemeral-storage=1000Gi,"
                                  "limits.ephemeral-storage=1000Gi")
        runtime = KubernetesRuntime(settings)
        queue: asyncio.Queue[AppEvent] = asyncio.Queue()

        async def pump() -> None:
            async for event in runtime.apps.events():
                queue.put_nowait(event)
        pumping = asyncio.create_task(pump())
        kube = await KubeClient.connect(cluster.kubeconfig_path)
        ours: list[float] = []
        bare: list[float] = []
        try:
            await _kubegate(runtime, queue, _spec("warm", 18000))  # namespace, policy and client models, once
            namespace = namespace_name(settings.namespace_prefix, "bench@example.com")
            for index in range(runs):
                first, second = (("ours", "bare") if index % 2 == 0 else ("bare", "ours"))
                for which in (first, second):
                    port = 18001 + 2 * index + (which == "bare")
                    if which == "ours":
                        ours.append(await _kubegate(runtime, queue, _spec(f"ours-{index}", port)))
                    else:
                        bare.append(await _bare(cluster, kube, _spec(f"bare-{index}", port), namespace))
        finally:
            pumping.cancel()
            await kube.close()
            await runtime.close()
    p50_ours, p50_bare = statistics.median(ours) * 1000, statistics.median(bare) * 1000
    print(f"create -> Ready, {runs} each: kubegate p50 {p50_ours:.0f} ms, bare Deployment p50 {p50_bare:.0f} ms")
    print(f"kubegate's overhead p50 {p50_ours - p50_bare:.0f} ms; ratio {p50_ours / p50_bare:.2f}x "
          "(both wait for the same 2 s readiness probe period)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        asyncio.run(_measure(args.runs, Path(data)))


if __name__ == "__main__":
    main()
