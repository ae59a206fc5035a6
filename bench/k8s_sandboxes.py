"""Sandboxes on the Kubernetes runtime (the fake cluster, per-Pod networks on), through REST on ``kubegate serve``.

Reports, in one run against one fake cluster:
- create -> running, p50/p99: the client's send time against the ``startedAt`` stamp the gateway
  writes when the Pod turns Ready; baseline: the same sandbox Job created bare with the official
  client (no namespace policy, Secret, Service or NetworkPolicy) until its Pod is Ready;
- ``exec`` of ``true`` through REST, p50/p99, against a bare ``pods/exec`` of ``true`` (``KubeClient``)
  into the same Pod;
- HTTP requests/s through the sandbox URL (gateway -> Service cluster IP -> pod IP -> server)
  against the same server hit at its Service's cluster IP directly; both with wrk.

    python bench/k8s_sandboxes.py [--samples 30] [--seconds 5] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _harness import (  # noqa: E402
    free_port,
    kubegate,
    line,
    median,
    mint_key,
    rate_line,
    ratio_line,
    report_ratio,
    wrk_get,
)
from sandboxes import create_latency, exec_latency, running, url_rate  # noqa: E402

from k8s import manifests  # noqa: E402
from k8s import sandboxes as sandbox_objects  # noqa: E402
from k8s.client import KubeClient  # noqa: E402
from k8s.workloads import pod_ready  # noqa: E402
from mcp_server.runtime.base import RunSpec  # noqa: E402

NEEDS = ("wrk", "fake-cluster")
SERVER = "python3 -m http.server 8080"


def fake_cluster(kubeconfig: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "k8s.sim", "--port", str(free_port()), "--kubeconfig",
                             str(kubeconfig)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if "fake cluster at" not in proc.stdout.readline():
        raise RuntimeError("the fake cluster did not start")
    return proc



async def ready_pod(kube: KubeClient, run_id: str) -> tuple[str, str]:
    selector = f"{manifests.RUN_LABEL}={manifests.label_value(run_id)}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for pod in (await kube.list("pods", selector))[0]:
            if pod_ready(pod):
                return pod["metadata"]["namespace"], pod["metadata"]["name"]
        await asyncio.sleep(0.002)
    raise RuntimeError(f"{run_id} never got a ready Pod")


async def bare(kube: KubeClient, samples: int) -> tuple[list[float], list[float], str]:
    """Bare Job -> Ready times, bare exec times, and the namespace the last Job (kept) runs in."""
    namespace = "bench-bare"
    await kube.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    creates, execs = [], []
    for i in range(samples + 1):
        spec = RunSpec(f"sandbox_bare{i}", "bench", "ubuntu", ["x"], timeout_seconds=600)
        job, _, _ = sandbox_objects.objects(spec, namespace, port=8080, ttl_seconds=60)
        job["spec"]["suspend"] = False
        began = time.perf_counter()
        await kube.create(job)
        pod = await ready_pod(kube, spec.run_id)
        creates.append((time.perf_counter() - began) * 1000)
        if i < samples:
            await kube.delete_job(namespace, job["metadata"]["name"])
    for _ in range(samples):
        began = time.perf_counter()
        outcome = await kube.exec(*pod, manifests.CONTAINER, ["true"])
        execs.append((time.perf_counter() - began) * 1000)
        assert outcome.exit_code == 0
    return creates[:samples], execs, namespace


async def proxy_ratio(http: httpx.AsyncClient, kube: KubeClient, gateway: str, seconds: int) -> tuple[float, float]:
    body = {"name": "web", "image": "ubuntu", "timeout": "10m"}
    sid, through = await url_rate(http, gateway, body, SERVER, seconds)
    [service] = (await kube.list("services", f"{manifests.RUN_LABEL}={manifests.label_value(sid)}"))[0]
    direct = wrk_get(f"http://{service['spec']['clusterIP']}:8080/index.html", {}, seconds)
    await http.delete(f"/api/sandboxes/{sid}")
    return through, direct


async def main(samples: int, seconds: int) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    data_dir = Path(tempfile.mkdtemp(prefix="kubegate-bench-k8s-sbx-", dir="/var/tmp"))
    cluster = fake_cluster(data_dir / "kubeconfig")
    extra = {"KUBEGATE_RUNTIME": "kubernetes", "KUBEGATE_KUBECONFIG": str(data_dir / "kubeconfig"),
             "KUBEGATE_MAX_SANDBOXES_PER_USER": "1000"}
    key = mint_key(data_dir, **extra)
    port = free_port()
    server = kubegate(data_dir, port, extra)
    gateway = f"http://127.0.0.1:{port}"
    kube = await KubeClient.connect(data_dir / "kubeconfig")
    try:
        async with httpx.AsyncClient(base_url=gateway, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
            create_times = await create_latency(http, data_dir / "kubegate.db", samples)
            sid = (await http.post("/api/sandboxes", json={"name": "exec", "image": "ubuntu"})).json()["sandbox"]["id"]
            await running(http, sid)
            exec_times = await exec_latency(http, sid, samples)
            await http.delete(f"/api/sandboxes/{sid}")
            bare_creates, bare_execs, _ = await bare(kube, samples)
            through, direct = await proxy_ratio(http, kube, gateway, seconds)
    finally:
        await kube.close()
        server.send_signal(signal.SIGTERM)
        server.wait()
        cluster.send_signal(signal.SIGTERM)
        cluster.wait()
        shutil.rmtree(data_dir, ignore_errors=True)
    print(line("create -> running (kubernetes)", create_times))
    print(line("bare Job -> Pod Ready (baseline)", bare_creates))
    print(ratio_line("create / bare Job, p50", median(create_times) / median(bare_creates)))
    print(line("exec `true` through REST", exec_times))
    print(line("bare pods/exec `true` (baseline)", bare_execs))
    print(ratio_line("exec / bare pods/exec, p50", median(exec_times) / median(bare_execs)))
    print(rate_line("HTTP through the sandbox URL", through))
    print(rate_line("HTTP to its Service's cluster IP", direct))
    print(ratio_line("URL / direct", through / direct))
    report_ratio("k8s sandbox create->running p50", median(create_times) / median(bare_creates),
                 "a bare Job to its Pod Ready", better="lower")
    report_ratio("k8s sandbox exec p50", median(exec_times) / median(bare_execs), "a bare pods/exec", better="lower")
    report_ratio("k8s sandbox URL req/s", through / direct, "its Service's cluster IP hit directly")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="5 samples, 2 s of load")
    options = parser.parse_args()
    asyncio.run(main(5 if options.quick else options.samples, 2 if options.quick else options.seconds))
