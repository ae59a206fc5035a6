"""``Workloads`` on Kubernetes: a sandbox is a one-Pod Job with a Secret, a Service and a NetworkPolicy.

``start`` creates the Job suspended (in a namespace whose policy is in place), then, each owned
by the Job, the NetworkPolicy (only the gateway may reach the Pod), the Service and the Secret
(env and password), and only then resumes the Job: the Pod never runs unprotected, and a
failure anywhere deletes the Job, which takes everything it owns with it, before raising.

The rest rides on ``KubernetesRuntime``: its watches say ``started`` and, for workloads,
``ready`` (the Pod's ``Ready`` condition; ``on_pod``), its Job watch says ``exited`` (the
Job's deadline: ``timeout``), its ``cancel``/``remove``/``recover`` apply unchanged. Exec, file
I/O and stats are ``pods/exec`` calls running ``k8s.podscripts`` in the Pod. ``extend`` raises
the Job's ``activeDeadlineSeconds``, which lives in the cluster, so it holds across a gateway
restart. ``endpoint`` is the Service's ``clusterIP``, learned from a Services watch (so a
sandbox another process started is reachable too); unknown yet, its DNS name.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from k8s import manifests, podscripts, sandboxes
from k8s.client import Obj
from mcp_server import errors
from mcp_server.runtime.base import (
    EXEC_STREAM_LIMIT,
    Endpoint,
    ExecRequest,
    ExecResult,
    OutputSink,
    RunSpec,
    WorkloadStats,
)

if TYPE_CHECKING:
    from k8s.runtime import KubernetesRuntime

WORKLOAD_LABEL = "workload"
"""Label of a ``RunSpec`` that is a long-lived workload (as for the local runtime)."""
_SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_EXEC_GRACE = 15.0
"""Seconds past an exec's timeout before the gateway gives up on the stream itself."""
_FILE_SECONDS = 120.0


def gateway_namespace() -> str:
    """The namespace the gateway runs in (its ServiceAccount's), whose pods the NetworkPolicy admits."""
    try:
        return _SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or sandboxes.GATEWAY_NAMESPACE
    except OSError:
        return sandboxes.GATEWAY_NAMESPACE


def pod_ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


class KubernetesWorkloads:
    def __init__(self, runtime: KubernetesRuntime) -> None:
        self._runtime = runtime
        self._services: dict[str, Endpoint] = {}
        self._gateway_namespace = gateway_namespace()

    async def start(self, spec: RunSpec, *, port: int) -> None:
        runtime = self._runtime
        kube = await runtime._kube()
        if spec.run_id in runtime._runs:
            raise errors.Conflict(f"run {spec.run_id} already exists")
        spec = replace(spec, labels={**spec.labels, WORKLOAD_LABEL: "1"})
        run = runtime._register(spec)
        job_manifest, service, policy = sandboxes.objects(
            spec, run.namespace, port=port, ttl_seconds=runtime._settings.job_ttl_seconds,
            gateway_namespace=self._gateway_namespace, placement=runtime._placement)
        try:
            job = await runtime._create_job(kube, spec, run.namespace, job_manifest)
        except BaseException:
            runtime._runs.pop(spec.run_id, None)
            raise
        try:
            for owned in (policy, service):
                owned["metadata"]["ownerReferences"] = [manifests.owner_reference(job)]
                created = await kube.create(owned)
                if created["kind"] == "Service":
                    self.on_service("ADDED", created)
            await kube.create(sandboxes.secret(spec, run.namespace, job))
            await kube.resume_job(run.namespace, run.name)
        except BaseException:
            # Forgotten first, so the Job's deletion is no event of a run; the cascade takes the rest.
            runtime._runs.pop(spec.run_id, None)
            self._services.pop(spec.run_id, None)
            await asyncio.shield(runtime._delete_job(spec.run_id, run.namespace, run.name))
            raise
        runtime._arm(run, runtime._settings.start_timeout)

    def on_service(self, kind: str, service: Obj) -> None:
        """Services watch: where each workload's port is reached."""
        meta = service["metadata"]
        run_id = (meta.get("annotations") or {}).get(manifests.RUN_ID_ANNOTATION)
        if not run_id:
            return
        if kind == "DELETED":
            self._services.pop(run_id, None)
            return
        address = service["spec"].get("clusterIP")
        ports = service["spec"].get("ports") or []
        if address and address != "None" and ports:
            self._services[run_id] = Endpoint(host=address, port=int(ports[0]["port"]))

    def endpoint(self, run_id: str, *, owner: str | None = None) -> Endpoint:
        found = self._services.get(run_id)
        if found is not None:
            return found
        # Not seen yet (no watch runs in a replica that has not touched the cluster): its Service's name,
        # in its owner's namespace, which any replica can derive.
        run = self._runtime._runs.get(run_id)
        if run is not None:
            namespace = run.namespace
        elif owner is not None:
            namespace = manifests.namespace_name(self._runtime._settings.namespace_prefix, owner)
        else:
            namespace = "default"
        port = self._runtime._settings.sandbox_port
        return Endpoint(host=f"{manifests.job_name(run_id)}.{namespace}.svc", port=port)

    async def _pod(self, run_id: str) -> tuple[str, str]:
        """(namespace, name) of the workload's running Pod; 503 when it has none."""
        run = self._runtime._runs.get(run_id)
        pods = [run.pod] if run is not None and run.pod is not None else []
        if not pods or not pod_ready(pods[0]):
            kube = await self._runtime._kube()
            pods, _ = await kube.list("pods", f"{manifests.RUN_LABEL}={manifests.label_value(run_id)}")
        for pod in pods:
            meta = pod["metadata"]
            if (meta.get("annotations") or {}).get(manifests.RUN_ID_ANNOTATION) == run_id and pod_ready(pod) \
                    and not meta.get("deletionTimestamp"):
                return meta["namespace"], meta["name"]
        raise errors.Unavailable("the sandbox is not running (it has no ready Pod)")

    async def _run(self, run_id: str, argv: list[str], *, stdin: bytes | None = None, limit: int,
                   seconds: float, sink: OutputSink | None = None) -> tuple[int, bytes, bytes, bool]:
        namespace, pod = await self._pod(run_id)
        kube = await self._runtime._kube()
        queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        relay = asyncio.create_task(_relay(queue, sink)) if sink is not None else None
        try:
            async with asyncio.timeout(seconds):
                outcome = await kube.exec(namespace, pod, manifests.CONTAINER, argv, stdin=stdin, limit=limit,
                                          sink=(lambda channel, data: queue.put_nowait((channel, data)))
                                          if sink is not None else None)
        finally:
            if relay is not None:
                queue.put_nowait(None)
                await relay
        return outcome.exit_code, outcome.stdout, outcome.stderr, outcome.truncated

    async def exec(self, run_id: str, request: ExecRequest, sink: OutputSink | None = None) -> ExecResult:
        seconds = max(1, int(request.timeout_seconds + 0.999))
        env = [f"{key}={value}" for key, value in request.env.items()]
        argv = podscripts.command(podscripts.EXEC, "kubegate-exec", request.cwd or "", str(seconds), *env, "--",
                                  *request.command)
        began = time.monotonic()
        try:
            code, out, err, truncated = await self._run(run_id, argv, stdin=bytes(request.stdin) or None,
                                                        limit=EXEC_STREAM_LIMIT, seconds=seconds + _EXEC_GRACE,
                                                        sink=sink)
        except TimeoutError:
            return ExecResult(137, b"", b"", False, True)
        if (refused := podscripts.refusal(code, err)) is not None:
            raise refused
        timed_out = code == 137 and time.monotonic() - began >= seconds
        return ExecResult(code, out, err, truncated, timed_out)

    async def read_file(self, run_id: str, path: str, *, limit: int) -> bytes:
        argv = podscripts.command(podscripts.READ, "kubegate-read", path, str(limit))
        code, out, err, _ = await self._run(run_id, argv, limit=limit, seconds=_FILE_SECONDS)
        if (refused := podscripts.refusal(code, err)) is not None:
            raise refused
        if code != 0:
            raise errors.BadRequest(f"cannot read {path!r}: {err.decode(errors='replace').strip()[:200]}")
        return out

    async def write_file(self, run_id: str, path: str, data: bytes) -> None:
        argv = podscripts.command(podscripts.WRITE, "kubegate-write", path)
        code, _, err, _ = await self._run(run_id, argv, stdin=data, limit=4096, seconds=_FILE_SECONDS)
        if (refused := podscripts.refusal(code, err)) is not None:
            raise refused
        if code != 0:
            raise errors.BadRequest(f"cannot write {path!r}: {err.decode(errors='replace').strip()[:200]}")

    async def stats(self, run_id: str) -> WorkloadStats:
        code, out, _, _ = await self._run(run_id, podscripts.command(podscripts.STATS, "kubegate-stats"),
                                          limit=256, seconds=_FILE_SECONDS)
        try:
            processes, memory = (int(field) for field in out.split()[:2])
        except ValueError as exc:
            raise errors.Unavailable("the sandbox did not report its usage") from exc
        return WorkloadStats(processes=processes, memory_bytes=memory)

    async def extend(self, run_id: str, deadline: datetime) -> None:
        run = self._runtime._runs.get(run_id) or await self._runtime._find(run_id)
        if run is None:
            raise errors.Conflict("the sandbox is no longer running")
        kube = await self._runtime._kube()
        try:
            job = await kube.read("Job", run.namespace, run.name)
            started = _stamp((job.get("status") or {}).get("startTime") or job["metadata"]["creationTimestamp"])
            patch = sandboxes.deadline_patch(started, deadline)
            await kube.set_job_deadline(run.namespace, run.name, patch["spec"]["activeDeadlineSeconds"])
        except errors.NotFound as exc:
            raise errors.Conflict("the sandbox is no longer running") from exc


async def _relay(queue: asyncio.Queue[tuple[int, bytes] | None], sink: OutputSink) -> None:
    """Hand the exec's output to the async ``sink`` in order, as the client's sync callback queued it."""
    while (item := await queue.get()) is not None:
        channel, data = item
        await sink("stdout" if channel == 1 else "stderr", data)
