"""Services and a Job's moving deadline in the fake cluster, over its HTTP API."""

from __future__ import annotations

import copy

import httpx
import pytest

from k8s.sim import FakeCluster

NS = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}
SERVICE = {
    "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "demo"},
    "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
}
JOB = {
    "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "long", "namespace": "demo"},
    "spec": {"backoffLimit": 0, "activeDeadlineSeconds": 1, "template": {"spec": {"restartPolicy": "Never",
             "containers": [{"name": "main", "image": "busybox",
                             "command": ["sh", "-c", "trap 'exit 0' TERM; sleep infinity & wait"]}]}}},
}


async def test_a_service_gets_a_reachable_cluster_ip() -> None:
    async with FakeCluster() as cluster, httpx.AsyncClient(base_url=cluster.url) as http:
        await http.post("/api/v1/namespaces", json=NS)
        created = await http.post("/api/v1/namespaces/demo/services", json=SERVICE)
        assert created.status_code == 201
        spec = created.json()["spec"]
        # A loopback cluster IP, so the Service is reachable from any process here (k8s.sim.proxy).
        assert spec["type"] == "ClusterIP" and spec["clusterIP"].startswith("127.")
        assert spec["ports"][0]["protocol"] == "TCP"
        assert cluster.service_address("demo", "web", 80) == (spec["clusterIP"], 80)
        assert (await http.get("/api/v1/namespaces/demo/services/web")).json()["spec"] == spec
        assert (await http.delete("/api/v1/namespaces/demo/services/web")).status_code == 200
        assert cluster.invalid_writes == []


async def test_a_malformed_service_is_refused_with_422() -> None:
    async with FakeCluster() as cluster, httpx.AsyncClient(base_url=cluster.url) as http:
        await http.post("/api/v1/namespaces", json=NS)
        digit_name = copy.deepcopy(SERVICE)
        digit_name["metadata"]["name"] = "1web"
        no_ports = copy.deepcopy(SERVICE)
        no_ports["spec"]["ports"] = []
        bad_port = copy.deepcopy(SERVICE)
        bad_port["spec"]["ports"][0]["port"] = 70000
        unknown = copy.deepcopy(SERVICE)
        unknown["spec"]["colour"] = "blue"
        for body in (digit_name, no_ports, bad_port, unknown):
            response = await http.post("/api/v1/namespaces/demo/services", json=body)
            assert response.status_code == 422, body
        assert len(cluster.invalid_writes) == 4
        cluster.invalid_writes.clear()


async def test_raising_a_running_jobs_deadline_keeps_it_running_past_the_old_one() -> None:
    async with FakeCluster() as cluster, httpx.AsyncClient(base_url=cluster.url) as http:
        await http.post("/api/v1/namespaces", json=NS)
        job = {**JOB, "spec": {**JOB["spec"], "activeDeadlineSeconds": 3}}
        assert (await http.post("/apis/batch/v1/namespaces/demo/jobs", json=job)).status_code == 201
        await cluster.wait_until(lambda: '"Running"' in str(cluster.objects("pods")).replace("'", '"'))
        headers = {"content-type": "application/merge-patch+json"}
        raised = {"spec": {"activeDeadlineSeconds": 3600}}
        response = await http.patch("/apis/batch/v1/namespaces/demo/jobs/long", json=raised, headers=headers)
        assert response.status_code == 200
        with pytest.raises(TimeoutError):  # well past the old deadline, nothing ends it
            await cluster.wait_until(lambda: "DeadlineExceeded" in str(cluster.objects("jobs")), timeout=6)
        assert len(cluster.objects("pods")) == 1
        # Lowered below its age, the Job ends at once with DeadlineExceeded and its Pod goes.
        lowered = {"spec": {"activeDeadlineSeconds": 1}}
        await http.patch("/apis/batch/v1/namespaces/demo/jobs/long", json=lowered, headers=headers)
        await cluster.wait_until(lambda: not cluster.objects("pods") and "Failed" in str(cluster.objects("jobs")),
                                 timeout=20)
        [ended] = cluster.objects("jobs")
        assert [c["reason"] for c in ended["status"]["conditions"]] == ["DeadlineExceeded", "DeadlineExceeded"]
        assert cluster.invalid_writes == []
