"""Per-Pod networking in the fake cluster: two Pods on the same port, each at its own address, and a Service."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import httpx
import pytest

from k8s.client import KubeClient
from k8s.sim import FakeCluster
from k8s.sim.podnet import PodNetwork

pytestmark = pytest.mark.skipif(not PodNetwork.available(), reason="per-Pod networks need root and slirp4netns")

NS = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}
# Each Pod serves its own name on 8080, and declares the port (what the Pod's network forwards).
SERVE = ("import http.server,os\n"
         "class H(http.server.BaseHTTPRequestHandler):\n"
         "  def do_GET(self):\n"
         "    body=os.environ['HOSTNAME'].encode()\n"
         "    self.send_response(200); self.end_headers(); self.wfile.write(body)\n"
         "http.server.HTTPServer(('0.0.0.0',8080),H).serve_forever()\n")


def _pod(name: str, app: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "demo", "labels": {"app": app}},
            "spec": {"restartPolicy": "Never", "containers": [{
                "name": "web", "image": "python:3", "command": [sys.executable, "-c", SERVE],
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]}}


def _from_another_process(url: str) -> str:
    """GET ``url`` from a separate process, as the gateway would (the cluster's loop keeps serving)."""
    code = "import sys,urllib.request;print(urllib.request.urlopen(sys.argv[1],timeout=10).read().decode(),end='')"
    return subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, check=True).stdout


async def _get(url: str, within: float = 20.0) -> str:
    """The body at ``url`` once the server in the Pod listens (bounded)."""
    async with asyncio.timeout(within):
        while True:
            try:
                return await asyncio.to_thread(_from_another_process, url)
            except subprocess.CalledProcessError:
                await asyncio.sleep(0.1)


async def test_two_pods_on_one_port_each_have_an_address_and_a_service_reaches_the_ready_one() -> None:
    async with FakeCluster() as cluster, httpx.AsyncClient(base_url=cluster.url) as http:
        await http.post("/api/v1/namespaces", json=NS)
        for name, app in (("one", "web"), ("two", "other")):
            assert (await http.post("/api/v1/namespaces/demo/pods", json=_pod(name, app))).status_code == 201

        def addresses() -> dict[str, str]:
            return {p["metadata"]["name"]: (p.get("status") or {}).get("podIP", "") for p in cluster.objects("pods")
                    if (p.get("status") or {}).get("phase") == "Running"}
        await cluster.wait_until(lambda: len(addresses()) == 2)
        ips = addresses()
        assert ips["one"] != ips["two"] and all(ip.startswith("127.") for ip in ips.values())
        # Both listen on 8080 without colliding, each reached at its own address from another process.
        assert await _get(f"http://{ips['one']}:8080/") == "one"
        assert await _get(f"http://{ips['two']}:8080/") == "two"
        service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "demo"},
                   "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}}
        assert (await http.post("/api/v1/namespaces/demo/services", json=service)).status_code == 201
        host, port = cluster.service_address("demo", "web", 80)
        assert await _get(f"http://{host}:{port}/") == "one"
        assert cluster.invalid_writes == []


async def test_a_service_without_ready_pods_refuses_and_an_exec_shares_the_pods_network() -> None:
    async with FakeCluster() as cluster, httpx.AsyncClient(base_url=cluster.url) as http:
        await http.post("/api/v1/namespaces", json=NS)
        service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "demo"},
                   "spec": {"selector": {"app": "web"}, "ports": [{"port": 8080}]}}
        await http.post("/api/v1/namespaces/demo/services", json=service)
        host, port = cluster.service_address("demo", "web", 8080)
        with pytest.raises(subprocess.CalledProcessError):
            await asyncio.to_thread(_from_another_process, f"http://{host}:{port}/")
        await http.post("/api/v1/namespaces/demo/pods", json=_pod("one", "web"))
        assert await _get(f"http://{host}:{port}/") == "one"
        # A command run by pods/exec sees the Pod's own loopback, where its server listens.
        kube = await KubeClient.connect(cluster.kubeconfig_path)
        try:
            outcome = await kube.exec("demo", "one", "web", [
                sys.executable, "-c", "import urllib.request as u;print(u.urlopen('http://127.0.0.1:8080/').read().decode())"])
        finally:
            await kube.close()
        assert (outcome.exit_code, outcome.stdout) == (0, b"one\n")
        await http.delete("/api/v1/namespaces/demo/pods/one")
        await cluster.wait_until(lambda: not cluster.objects("pods"), timeout=30)
        with pytest.raises(subprocess.CalledProcessError):
            await asyncio.to_thread(_from_another_process, f"http://{host}:{port}/")
