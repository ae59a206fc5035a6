"""The fake cluster's ``pods/exec`` WebSocket, driven by the official client's ``kubernetes.stream``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream
from kubernetes.stream.ws_client import ERROR_CHANNEL, STDERR_CHANNEL, STDOUT_CHANNEL

from k8s.client import KubeClient
from k8s.sim import FakeCluster
from mcp_server.errors import NotFound

NS = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}
POD = {
    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "box", "namespace": "demo"},
    "spec": {"restartPolicy": "Never", "containers": [{
        "name": "main", "image": "busybox", "env": [{"name": "GREETING", "value": "hello"}],
        "command": ["sh", "-c", "trap 'exit 0' TERM; sleep infinity & wait"]}]},
}


@pytest.fixture
async def cluster() -> AsyncIterator[FakeCluster]:
    async with FakeCluster() as fake, httpx.AsyncClient(base_url=fake.url) as http:
        assert (await http.post("/api/v1/namespaces", json=NS)).status_code == 201
        assert (await http.post("/api/v1/namespaces/demo/pods", json=POD)).status_code == 201
        await fake.wait_until(lambda: '"Running"' in json.dumps(fake.objects("pods")))
        yield fake
        assert fake.invalid_writes == []


def _core(cluster: FakeCluster) -> k8s_client.CoreV1Api:
    api = k8s_client.ApiClient()
    k8s_config.load_kube_config(str(cluster.kubeconfig_path), client_configuration=api.configuration)
    return k8s_client.CoreV1Api(api)


def _run(cluster: FakeCluster, command: list[str], stdin: bytes | None = None) -> tuple[bytes, bytes, Any]:
    """stdout, stderr and the status channel's JSON of one exec, read apart."""
    ws = stream(_core(cluster).connect_get_namespaced_pod_exec, "box", "demo", command=command,
                stdin=stdin is not None, stdout=True, stderr=True, tty=False, binary=True, _preload_content=False)
    out, err = b"", b""
    try:
        if stdin is not None:
            ws.write_stdin(stdin)
            ws.close_channel(0)  # v5: the end of stdin
        while ws.is_open():
            ws.update(timeout=1)
            out += ws.read_channel(STDOUT_CHANNEL) or b""
            err += ws.read_channel(STDERR_CHANNEL) or b""
        status = ws.read_channel(ERROR_CHANNEL)
    finally:
        ws.close()
    return out, err, json.loads(status)


async def exec_in(cluster: FakeCluster, command: list[str], stdin: bytes | None = None) -> tuple[bytes, bytes, Any]:
    return await anyio.to_thread.run_sync(_run, cluster, command, stdin)


async def test_exec_keeps_stdout_and_stderr_apart_and_reports_success(cluster: FakeCluster) -> None:
    out, err, status = await exec_in(cluster, ["sh", "-c", 'echo "$GREETING"; echo oops >&2'])
    assert (out, err) == (b"hello\n", b"oops\n")
    assert status["status"] == "Success"
    assert ("create", "", "pods/exec", "demo") in cluster.audit


async def test_a_failing_command_reports_its_exit_code_on_the_status_channel(cluster: FakeCluster) -> None:
    _, _, status = await exec_in(cluster, ["sh", "-c", "exit 3"])
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    _, _, killed = await exec_in(cluster, ["sh", "-c", "kill -KILL $$"])
    assert killed["details"]["causes"][0]["message"] == "137"


async def test_stdin_reaches_the_command_byte_for_byte(cluster: FakeCluster) -> None:
    payload = bytes(range(256)) * 4
    out, _, status = await exec_in(cluster, ["cat"], stdin=payload)
    assert out == payload and status["status"] == "Success"


async def test_files_written_by_exec_stay_in_the_containers_directory(cluster: FakeCluster) -> None:
    await exec_in(cluster, ["sh", "-c", "echo kept > note.txt"])
    out, _, _ = await exec_in(cluster, ["cat", "note.txt"])
    assert out == b"kept\n"


async def test_a_missing_executable_or_pod_is_an_error_not_a_hang(cluster: FakeCluster) -> None:
    _, _, status = await exec_in(cluster, ["no-such-program"])
    assert status["status"] == "Failure" and "no-such-program" in status["message"]

    def missing_pod() -> None:
        stream(_core(cluster).connect_get_namespaced_pod_exec, "gone", "demo", command=["true"],
               stdout=True, stderr=True, stdin=False, tty=False)
    with pytest.raises(ApiException) as raised:
        await anyio.to_thread.run_sync(missing_pod)
    # The official client reports a refused upgrade in its reason, with the API's Status after it.
    reason = str(raised.value.reason)
    assert "Handshake status 404" in reason and 'pods \\"gone\\" not found' in reason


async def test_the_runtimes_client_execs_with_the_official_async_client(cluster: FakeCluster) -> None:
    kube = await KubeClient.connect(cluster.kubeconfig_path)
    try:
        seen: list[tuple[int, bytes]] = []
        outcome = await kube.exec("demo", "box", "main", ["sh", "-c", "echo out; echo err >&2; exit 4"],
                                  sink=lambda channel, data: seen.append((channel, data)))
        assert (outcome.stdout, outcome.stderr, outcome.exit_code) == (b"out\n", b"err\n", 4)
        assert sorted(seen) == [(1, b"out\n"), (2, b"err\n")]
        payload = bytes(range(256)) * 600  # several frames, every byte value
        written = await kube.exec("demo", "box", "main", ["sh", "-c", "cat > blob"], stdin=payload)
        assert written.exit_code == 0
        read = await kube.exec("demo", "box", "main", ["cat", "blob"])
        assert read.stdout == payload
        with pytest.raises(NotFound):
            await kube.exec("demo", "gone", "main", ["true"])
    finally:
        await kube.close()
