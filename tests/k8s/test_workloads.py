"""``KubernetesRuntime.workloads`` against the strict fake cluster: the objects, readiness, exec, files, extend."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from k8s import manifests, status
from k8s.runtime import KubernetesRuntime
from k8s.sim import FakeCluster
from k8s.sim.podnet import PodNetwork
from k8s.sim.store import ApiError
from mcp_server import errors
from mcp_server.runtime.base import ExecRequest, RunSpec, workloads_of
from tests.runtime.support import Events

PORT = 8080
PASSWORD = "pw-" + "x" * 20


def _spec(run_id: str, timeout: float = 600) -> RunSpec:
    return RunSpec(run_id, "dev@example.com", "ubuntu:22.04", ["kubegate-agent"], timeout_seconds=timeout,
                   env={"KUBEGATE_SANDBOX_PASSWORD": PASSWORD, "MODE": "dev"}, labels={"sandbox": run_id})


async def _ready(runtime: KubernetesRuntime, events: Events, run_id: str, timeout: float = 600) -> None:
    workloads = workloads_of(runtime)
    assert workloads is not None
    await workloads.start(_spec(run_id, timeout), port=PORT)
    assert (await events.next(run_id)).kind == "started"
    assert (await events.next(run_id)).kind == "ready"


async def test_a_workload_is_a_guarded_job_that_execs_and_keeps_files_in_its_home(
        cluster: FakeCluster, runtime: KubernetesRuntime, events: Events) -> None:
    workloads = runtime.workloads
    await _ready(runtime, events, "sandbox_one")
    name = manifests.job_name("sandbox_one")
    [job] = cluster.objects("jobs")
    assert job["spec"]["suspend"] is False and job["spec"]["activeDeadlineSeconds"] == 600
    uid = job["metadata"]["uid"]
    for kind in ("services", "networkpolicies", "secrets"):
        [owned] = [o for o in cluster.objects(kind) if o["metadata"]["name"] == name]
        assert owned["metadata"]["ownerReferences"][0]["uid"] == uid  # the Job's deletion takes it
    [policy] = [p for p in cluster.objects("networkpolicies") if p["metadata"]["name"] == name]
    assert policy["spec"]["ingress"][0]["from"][0]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name":
                                                                                       "kubegate"}}
    assert PASSWORD not in str(cluster.objects("jobs") + cluster.objects("services"))

    seen: list[tuple[str, bytes]] = []

    async def sink(stream: str, data: bytes) -> None:
        seen.append((stream, data))
    done = await workloads.exec("sandbox_one", ExecRequest(["sh", "-c", 'printf "$MODE"; echo oops >&2; exit 3']),
                                sink)
    assert (done.exit_code, done.stdout, done.stderr, done.timed_out) == (3, b"dev", b"oops\n", False)
    assert ("stdout", b"dev") in seen and ("stderr", b"oops\n") in seen
    piped = await workloads.exec("sandbox_one", ExecRequest(["cat"], stdin=b"fed", env={"X": "y z"}))
    assert piped.stdout == b"fed"
    env = await workloads.exec("sandbox_one", ExecRequest(["sh", "-c", 'printf "%s" "$X"'], env={"X": "y z"}))
    assert env.stdout == b"y z"
    slow = await workloads.exec("sandbox_one", ExecRequest(["sleep", "30"], timeout_seconds=1))
    assert (slow.exit_code, slow.timed_out) == (137, True)
    missing = await workloads.exec("sandbox_one", ExecRequest(["no-such-command"]))
    assert missing.exit_code == 127

    blob = bytes(range(256)) * 64
    await workloads.write_file("sandbox_one", "dir/sub/data.bin", blob)
    assert await workloads.read_file("sandbox_one", "dir/sub/data.bin", limit=1 << 20) == blob
    where = await workloads.exec("sandbox_one", ExecRequest(["sh", "-c", "pwd -P; cat data.bin | wc -c"],
                                                            cwd="dir/sub"))
    assert where.stdout.decode().split()[1] == str(len(blob))
    await workloads.write_file("sandbox_one", "empty", b"")
    assert await workloads.read_file("sandbox_one", "empty", limit=10) == b""
    with pytest.raises(errors.PayloadTooLarge):
        await workloads.read_file("sandbox_one", "dir/sub/data.bin", limit=100)
    with pytest.raises(errors.NotFound):
        await workloads.read_file("sandbox_one", "nothing-here", limit=100)

    await workloads.exec("sandbox_one", ExecRequest(["sh", "-c", "ln -s /etc etc-link; ln -s /etc/hostname host"]))
    for path in ("../escape", "a/../../b", "/etc/hostname", "etc-link/hostname", "host", "/"):
        with pytest.raises(errors.BadRequest):
            await workloads.read_file("sandbox_one", path, limit=1000)
        with pytest.raises(errors.BadRequest):
            await workloads.write_file("sandbox_one", path, b"no")
    with pytest.raises(errors.BadRequest):
        await workloads.write_file("sandbox_one", "etc-link/new/file", b"no")
    with pytest.raises(errors.BadRequest):
        await workloads.exec("sandbox_one", ExecRequest(["true"], cwd="etc-link"))
    stats = await workloads.stats("sandbox_one")
    assert stats.processes >= 1 and stats.memory_bytes >= 0
    assert cluster.invalid_writes == []


async def test_the_port_is_reached_through_the_service_and_extend_moves_the_jobs_deadline(
        cluster: FakeCluster, runtime: KubernetesRuntime, events: Events) -> None:
    if not PodNetwork.available():
        pytest.skip("per-Pod networks need root and slirp4netns")
    workloads = runtime.workloads
    await _ready(runtime, events, "sandbox_web", timeout=3)
    await workloads.exec("sandbox_web", ExecRequest(["sh", "-c", "echo hello > index.html; "
                                                     "nohup python3 -m http.server 8080 >server.log 2>&1 &"]))
    endpoint = workloads.endpoint("sandbox_web")
    assert endpoint.host is not None and endpoint.host.startswith("127.") and endpoint.port == PORT
    async with httpx.AsyncClient(base_url=f"http://{endpoint.host}:{endpoint.port}") as http:
        async with asyncio.timeout(20):
            while True:
                try:
                    response = await http.get("/index.html")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
    assert response.text == "hello\n"
    await workloads.extend("sandbox_web", datetime.now(UTC) + timedelta(seconds=3600))
    [job] = cluster.objects("jobs")
    assert job["spec"]["activeDeadlineSeconds"] >= 3590
    # Past the first deadline (3 s) it still runs; cancelling ends it and the cascade takes every object.
    with pytest.raises(TimeoutError):  # the Job would have failed at 3 s: watch the cluster for 5
        await cluster.wait_until(lambda: status.job_end(cluster.objects("jobs")[0]) is not None, timeout=5)
    await runtime.cancel("sandbox_web")
    assert (await events.wait("sandbox_web", "exited")).reason == "cancelled"
    await cluster.wait_until(lambda: not cluster.objects("services") and not cluster.objects(
        "networkpolicies", manifests.RUN_LABEL))


async def test_the_deadline_ends_a_workload_with_timeout(
        cluster: FakeCluster, runtime: KubernetesRuntime, events: Events) -> None:
    await _ready(runtime, events, "sandbox_short", timeout=2)
    assert (await events.wait("sandbox_short", "exited", timeout=30)).reason == "timeout"
    with pytest.raises(errors.Unavailable):
        await runtime.workloads.exec("sandbox_short", ExecRequest(["true"]))


async def test_a_start_that_fails_half_way_leaves_nothing_behind(cluster: FakeCluster,
                                                                 runtime: KubernetesRuntime) -> None:
    def refuse_services(resource: str, obj: dict[str, object]) -> None:
        if resource == "services":
            raise ApiError(403, "Forbidden", "services are not allowed here")
    cluster.store.admission.append(refuse_services)
    with pytest.raises(errors.Forbidden):
        await runtime.workloads.start(_spec("sandbox_half"), port=PORT)
    # The Job (suspended: its Pod never ran) and what it owned are gone; the run is not tracked.
    await cluster.wait_until(lambda: not cluster.objects("jobs") and not cluster.objects(
        "networkpolicies", manifests.RUN_LABEL) and not cluster.objects("secrets"))
    assert cluster.objects("pods") == []


async def test_exec_times_out_in_an_image_without_the_timeout_binary(
        cluster: FakeCluster, runtime: KubernetesRuntime, events: Events, tmp_path: Path) -> None:
    bare = tmp_path / "bin"  # the image's PATH: a shell and the few tools a minimal image has, no `timeout`
    bare.mkdir()
    for tool in ("sh", "sleep", "cat"):
        found = shutil.which(tool)
        assert found is not None
        (bare / tool).symlink_to(found)
    spec = replace(_spec("sandbox_bare"), env={**_spec("sandbox_bare").env, "PATH": str(bare)})
    await runtime.workloads.start(spec, port=PORT)
    await events.wait("sandbox_bare", "ready", timeout=15)
    missing = await runtime.workloads.exec("sandbox_bare", ExecRequest(["sh", "-c", "command -v timeout"]))
    assert missing.exit_code != 0
    # The child `sleep` holds the output open: only killing the whole tree lets the answer carry "started".
    slow = await runtime.workloads.exec("sandbox_bare", ExecRequest(["sh", "-c", "echo started; sleep 60; echo no"],
                                                                    timeout_seconds=1))
    assert (slow.exit_code, slow.stdout, slow.stderr, slow.timed_out) == (137, b"started\n", b"", True)
    killed = await runtime.workloads.exec("sandbox_bare", ExecRequest(["sh", "-c", "kill -TERM $$"]))
    assert (killed.exit_code, killed.stderr, killed.timed_out) == (143, b"", False)
    fed = await runtime.workloads.exec("sandbox_bare", ExecRequest(["cat"], stdin=b"fed"))
    assert (fed.exit_code, fed.stdout) == (0, b"fed")
