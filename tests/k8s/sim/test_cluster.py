"""The fake cluster itself: it must hold the runtime to a real API server's rules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import httpx
import pytest

from k8s.client import Gone, KubeClient
from k8s.sim import FakeCluster

NS = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}
JOB = {
    "apiVersion": "batch/v1", "kind": "Job",
    "metadata": {"name": "hello", "namespace": "demo", "labels": {"app": "hello"}},
    "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [
        {"name": "main", "image": "busybox", "command": ["sh", "-c", "echo hi"]}]}}},
}


async def test_an_invalid_object_is_refused_with_422_and_recorded() -> None:
    async with FakeCluster() as cluster, httpx.AsyncClient(base_url=cluster.url) as http:
        bad = {**NS, "metadata": {"name": "demo", "colour": "blue"}}
        response = await http.post("/api/v1/namespaces", json=bad)
        assert response.status_code == 422 and response.json()["reason"] == "Invalid"
        response = await http.post("/api/v1/namespaces", json={**NS, "metadata": {"name": "Not_A_Label"}})
        assert response.status_code == 422
        assert [w.resource for w in cluster.invalid_writes] == ["namespaces", "namespaces"]
        assert "colour" in cluster.invalid_writes[0].error


async def test_objects_need_an_existing_namespace_and_unique_names() -> None:
    async with FakeCluster() as cluster, httpx.AsyncClient(base_url=cluster.url) as http:
        assert (await http.post("/apis/batch/v1/namespaces/demo/jobs", json=JOB)).status_code == 404
        assert (await http.post("/api/v1/namespaces", json=NS)).status_code == 201
        assert (await http.post("/api/v1/namespaces", json=NS)).status_code == 409
        assert cluster.invalid_writes == []


async def test_jobs_orphan_their_pods_unless_deletion_propagates() -> None:
    async with FakeCluster() as cluster, httpx.AsyncClient(base_url=cluster.url) as http:
        await http.post("/api/v1/namespaces", json=NS)
        await http.post("/apis/batch/v1/namespaces/demo/jobs", json=JOB)
        await cluster.wait_until(lambda: "Complete" in str(cluster.objects("jobs")))
        assert (await http.delete("/apis/batch/v1/namespaces/demo/jobs/hello")).status_code == 200
        [pod] = cluster.objects("pods")
        assert pod["metadata"]["ownerReferences"] == []
        await http.post("/apis/batch/v1/namespaces/demo/jobs", json=JOB)
        await cluster.wait_until(lambda: len(cluster.objects("pods")) == 2)
        await http.delete("/apis/batch/v1/namespaces/demo/jobs/hello", params={"propagationPolicy": "Background"})
        await cluster.wait_until(lambda: len(cluster.objects("pods")) == 1)  # graceful: terminated, then removed
        assert cluster.invalid_writes == []


async def test_a_watch_from_a_compacted_resource_version_is_gone() -> None:
    async with FakeCluster() as cluster, httpx.AsyncClient(base_url=cluster.url) as http:
        await http.post("/api/v1/namespaces", json=NS)
        await http.post("/apis/batch/v1/namespaces/demo/jobs", json=JOB)
        cluster.compact()
        client = await KubeClient.connect(cluster.kubeconfig_path)
        try:
            with pytest.raises(Gone):
                async for _ in client.watch("jobs", "app=hello", "1"):
                    pass
            items, version = await client.list("jobs", "app=hello")
            assert [job["metadata"]["name"] for job in items] == ["hello"] and int(version) > 1
            assert [job["metadata"]["name"] for job in (await client.list("jobs", "app!=hello"))[0]] == []
        finally:
            await client.close()


async def test_pod_logs_are_served_from_the_local_process() -> None:
    async with FakeCluster() as cluster, httpx.AsyncClient(base_url=cluster.url) as http:
        await http.post("/api/v1/namespaces", json=NS)
        await http.post("/apis/batch/v1/namespaces/demo/jobs", json=JOB)
        await cluster.wait_until(lambda: "Complete" in str(cluster.objects("jobs")))
        [pod] = cluster.objects("pods")
        response = await http.get(f"/api/v1/namespaces/demo/pods/{pod['metadata']['name']}/log",
                                  params={"follow": "true"})
        assert response.text == "hi\n"
        terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert (pod["status"]["phase"], terminated["exitCode"], terminated["reason"]) == ("Succeeded", 0, "Completed")


def test_the_command_line_serves_a_cluster_and_writes_its_kubeconfig(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    process = subprocess.Popen([sys.executable, "-m", "k8s.sim", "--port", "0", "--kubeconfig", str(kubeconfig)],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()  # printed once the socket is listening
        assert "fake cluster at http://127.0.0.1:" in banner
        server = json.loads(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
        assert httpx.get(f"{server}/api/v1/namespaces").json()["kind"] == "NamespaceList"
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


async def test_a_follow_stream_ends_when_the_pod_is_deleted() -> None:
    long_job = json.loads(json.dumps(JOB))
    long_job["spec"]["template"]["spec"]["containers"][0]["command"] = ["sh", "-c", "echo up; exec sleep 60"]
    async with FakeCluster() as cluster, httpx.AsyncClient(base_url=cluster.url) as http:
        await http.post("/api/v1/namespaces", json=NS)
        await http.post("/apis/batch/v1/namespaces/demo/jobs", json=long_job)
        await cluster.wait_until(lambda: "running" in str(cluster.objects("pods")))
        name = cluster.objects("pods")[0]["metadata"]["name"]
        with anyio.fail_after(10):
            async with http.stream("GET", f"/api/v1/namespaces/demo/pods/{name}/log", params={"follow": "true"}) as r:
                async for line in r.aiter_lines():
                    assert line == "up"
                    await http.delete(f"/api/v1/namespaces/demo/pods/{name}")


POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "demo"},
       "spec": {"restartPolicy": "Never", "containers": [
           {"name": "main", "image": "busybox", "command": ["sh", "-c", "echo main"],
            "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "1"}}},
           {"name": "side", "image": "busybox", "command": ["sh", "-c", "echo side"]}]}}


async def test_a_resource_quota_refuses_pods_past_it_in_the_api_servers_words() -> None:
    async with FakeCluster() as cluster, httpx.AsyncClient(base_url=cluster.url) as http:
        await http.post("/api/v1/namespaces", json=NS)
        quota = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
                 "spec": {"hard": {"requests.cpu": "500m"}}}
        assert (await http.post("/api/v1/namespaces/demo/resourcequotas", json=quota)).status_code == 201
        refused = await http.post("/api/v1/namespaces/demo/pods", json=POD)
        assert refused.status_code == 403
        assert "exceeded quota: q" in refused.json()["message"]
        assert cluster.invalid_writes == []


async def test_a_terminating_namespace_takes_nothing_new_and_goes_once_empty() -> None:
    async with FakeCluster() as cluster, httpx.AsyncClient(base_url=cluster.url) as http:
        await http.post("/api/v1/namespaces", json=NS)
        deaf = ["sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"]  # stops only at the grace period's end
        stubborn = {**POD, "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1, "containers": [
            {"name": "main", "image": "busybox", "command": deaf}]}}
        await http.post("/api/v1/namespaces/demo/pods", json=stubborn)
        await cluster.wait_until(lambda: "Running" in str(cluster.objects("pods")))
        assert (await http.delete("/api/v1/namespaces/demo")).json()["status"]["phase"] == "Terminating"
        refused = await http.post("/apis/batch/v1/namespaces/demo/jobs", json=JOB)
        assert refused.status_code == 403 and "being terminated" in refused.json()["message"]
        await cluster.wait_until(lambda: not cluster.objects("namespaces"))


async def test_multi_container_pods_need_a_container_name_for_logs() -> None:
    async with FakeCluster() as cluster, httpx.AsyncClient(base_url=cluster.url) as http:
        await http.post("/api/v1/namespaces", json=NS)
        await http.post("/api/v1/namespaces/demo/pods", json=POD)
        await cluster.wait_until(lambda: "Succeeded" in str(cluster.objects("pods")))
        assert (await http.get("/api/v1/namespaces/demo/pods/p/log")).status_code == 400
        side = await http.get("/api/v1/namespaces/demo/pods/p/log", params={"container": "side"})
        assert side.text == "side\n"
        stamped = await http.get("/api/v1/namespaces/demo/pods/p/log", params={"container": "main",
                                                                              "timestamps": "true"})
        assert stamped.text.endswith("Z main\n")
        [pod] = cluster.objects("pods")
        assert [s["name"] for s in pod["status"]["containerStatuses"]] == ["main", "side"]


async def test_an_object_leaving_a_label_selector_leaves_the_watch_as_deleted() -> None:
    async with FakeCluster() as cluster, httpx.AsyncClient(base_url=cluster.url) as http:
        await http.post("/api/v1/namespaces", json={**NS, "metadata": {"name": "demo", "labels": {"a": "b"}}})
        listed = (await http.get("/api/v1/namespaces", params={"labelSelector": "a=b"})).json()
        version = listed["metadata"]["resourceVersion"]
        cluster.store.update("namespaces", None, "demo", lambda ns: ns["metadata"]["labels"].pop("a"))
        async with http.stream("GET", "/api/v1/namespaces", params={
                "watch": "true", "labelSelector": "a=b", "resourceVersion": version, "timeoutSeconds": "1"}) as resp:
            lines = [json.loads(line) async for line in resp.aiter_lines() if line.strip()]
        assert [event["type"] for event in lines] == ["DELETED"]


async def test_a_replace_from_a_stale_read_is_a_conflict() -> None:
    async with FakeCluster() as cluster, httpx.AsyncClient(base_url=cluster.url) as http:
        await http.post("/api/v1/namespaces", json=NS)
        created = (await http.post("/api/v1/namespaces/demo/resourcequotas", json={
            "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
            "spec": {"hard": {"pods": "1"}}})).json()
        fresh = {**created, "spec": {"hard": {"pods": "2"}}}
        assert (await http.put("/api/v1/namespaces/demo/resourcequotas/q", json=fresh)).status_code == 200
        assert (await http.put("/api/v1/namespaces/demo/resourcequotas/q", json=fresh)).status_code == 409
        assert cluster.invalid_writes == []
