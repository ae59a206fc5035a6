"""``KubernetesRuntime``: each run is a Job; its life is read from watches, never by polling.

A start is atomic: the user namespace's policy is ensured first (``NamespaceGuard``, fail
closed), then the Job is created suspended, its Secret created owned by it, and the Job resumed.
Until the Job exists a failure raises and nothing is left behind; once it exists the run is
tracked whatever happens (a later failure ends it with ``exited`` and deletes the Job, which
takes the Secret with it).

Watchers (Jobs and Pods labelled ``app.kubernetes.io/managed-by=kubegate``, across all
namespaces, plus the namespace policy kinds for the guard) feed ``_on_job`` / ``_on_pod``. A
run is matched by the ``kubegate.dev/run-id`` annotation its Job and Pod carry. The Pod's first
running state emits ``started`` and starts a log copier; a run with no running Pod after
``start_timeout`` is ended with the reason it never got one. The Job's final condition starts
``_finish``, which waits (bounded) for the Pod's terminated state and the last log bytes, then
emits ``exited``. Each run emits ``exited`` once: cancel, remove, a fatal waiting reason, the
start deadline and the Job's end race for it, and the first one to mark the run wins. Once the
engine has taken an ``exited`` event (it asks for the next one only after recording it), the
Job is deleted: the result is safe, so the cluster need not keep it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from k8s import manifests, status
from k8s.apps import SYNC_SECONDS, KubernetesApps
from k8s.client import Kind, KubeClient, Obj
from k8s.logs import LogCursor, RunLog, read_tail
from k8s.namespaces import WATCH_KINDS, NamespaceGuard
from k8s.policy import NamespacePolicy, pairs, tolerations
from k8s.watcher import Watcher
from k8s.workloads import WORKLOAD_LABEL, KubernetesWorkloads, pod_ready
from mcp_server import errors
from mcp_server.config import Settings
from mcp_server.runtime.base import OUTPUT_LIMIT, EventKind, ExitReason, RunEvent, RunSpec, last_line

log = logging.getLogger(__name__)

SETTLE_SECONDS = 5.0
"""How long ``_finish`` waits for the Pod's final state after the Job's; they come on separate streams."""
DRAIN_SECONDS = 10.0
"""How long ``_finish`` waits for the log copier to receive the last bytes."""
RECONNECT_SECONDS = 2.0
DELETE_RETRIES = (0.5, 2.0, 8.0)
COLLECT_DELAY = 1.0
"""Seconds between a result being recorded and its Job being deleted."""


@dataclass(eq=False)
class _Run:
    run_id: str
    namespace: str
    name: str
    log: RunLog
    pod: Obj | None = None
    started: bool = False
    exited: bool = False
    finishing: bool = False
    seen: bool = False
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    copier: asyncio.Task[None] | None = None
    start_deadline: asyncio.TimerHandle | None = None
    removed: bool = False
    workload: bool = False
    ready: bool = False


class KubernetesRuntime:
    """The Runtime protocol on a cluster reached through ``settings.kubeconfig`` (else in-cluster config)."""

    name = "kubernetes"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: KubeClient | None = None
        self._connecting = asyncio.Lock()
        self._runs: dict[str, _Run] = {}
        self.guard = NamespaceGuard(NamespacePolicy.from_settings(settings), self._kube, self._spawn)
        self._placement = manifests.Placement(
            runtime_class=settings.runtime_class, user_namespaces=settings.user_namespaces,
            node_selector=pairs(settings.node_selector, "KUBEGATE_NODE_SELECTOR"),
            tolerations=tuple(tolerations(settings.tolerations)))
        self._queue: asyncio.Queue[RunEvent] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.watchers: dict[Kind, Watcher] = {}
        self.workloads = KubernetesWorkloads(self)
        self.apps = KubernetesApps(settings, self._kube, self._watches_synced, self.guard, self._placement,
                                   self._spawn)

    async def _kube(self) -> KubeClient:
        if self._closed:
            raise errors.Unavailable("the Kubernetes runtime is shutting down")
        async with self._connecting:
            if self._client is None:
                self._client = await KubeClient.connect(self._settings.kubeconfig)
                self.watchers = {
                    "pods": Watcher(self._client, "pods", manifests.SELECTOR, self._on_any_pod, _ignore),
                    "jobs": Watcher(self._client, "jobs", manifests.SELECTOR, self._on_job, self._relisted),
                    "services": Watcher(self._client, "services", manifests.SELECTOR, self._on_service, _ignore),
                    "deployments": Watcher(self._client, "deployments", manifests.SELECTOR, self.apps.on_deployment,
                                           self.apps.relisted),
                }
                for kind in WATCH_KINDS:
                    self.watchers[kind] = Watcher(self._client, kind, manifests.SELECTOR, self.guard.watched(kind),
                                                  self.guard.relisted)
                for watcher in self.watchers.values():
                    self._spawn(watcher.run())
            return self._client

    async def _watches_synced(self) -> None:
        """Return once every watch has listed once (state read from them is then complete), else 503."""
        try:
            async with asyncio.timeout(SYNC_SECONDS):
                for watcher in list(self.watchers.values()):
                    await watcher.synced.wait()
        except TimeoutError:
            raise errors.Unavailable("the Kubernetes API server has not answered the runtime's watches yet; "
                                     "try again shortly") from None

    def _on_service(self, kind: str, service: Obj) -> None:
        self.workloads.on_service(kind, service)
        self.apps.on_service(kind, service)

    def _on_any_pod(self, kind: str, pod: Obj) -> None:
        self._on_pod(kind, pod)
        self.apps.on_pod(kind, pod)

    def ready(self) -> bool:
        """Connected, and every watch has listed once: run states and namespace checks can be trusted."""
        return bool(self.watchers) and all(watcher.synced.is_set() for watcher in self.watchers.values())

    async def api_reachable(self) -> str | None:
        """``None`` when the API server answers (for ``/readyz``), else why not."""
        try:
            await (await self._kube()).ping(manifests.SELECTOR)
        except Exception as exc:
            return f"the Kubernetes API server does not answer ({type(exc).__name__})"
        return None

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        if self._closed:  # a timer that fires after close() must not reconnect
            work.close()
            return asyncio.get_running_loop().create_task(asyncio.sleep(0))
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _register(self, spec: RunSpec) -> _Run:
        namespace = manifests.namespace_name(self._settings.namespace_prefix, spec.owner)
        run = _Run(spec.run_id, namespace, manifests.job_name(spec.run_id), RunLog(self._log_path(spec.run_id)),
                   workload=spec.labels.get(WORKLOAD_LABEL) == "1")
        self._runs[spec.run_id] = run
        return run

    def _log_path(self, run_id: str) -> Path:
        if Path(run_id).name != run_id or run_id in ("", ".", ".."):
            raise errors.BadRequest(f"invalid run id {run_id!r}")
        return self._settings.runs_dir / run_id / "log"

    def _emit(self, run_id: str, kind: EventKind, **result: Any) -> None:
        self._queue.put_nowait(RunEvent(run_id, kind, datetime.now(UTC), **result))

    def _exit(self, run: _Run, reason: ExitReason, *, code: int | None = None, output: str | None = None,
              message: str | None = None) -> bool:
        """Mark ``run`` exited and emit the event, unless something else already did."""
        if run.exited:
            return False
        run.exited = True
        if run.start_deadline is not None:
            run.start_deadline.cancel()
        if run.copier is None:
            self._spawn(run.log.finish())
        self._emit(run.run_id, "exited", exit_code=code, output=output, reason=reason, message=message)
        return True

    async def start(self, spec: RunSpec) -> None:
        kube = await self._kube()
        if spec.run_id in self._runs:  # before registering: the run already there must stay tracked
            raise errors.Conflict(f"run {spec.run_id} already exists")
        run = self._register(spec)
        try:
            job = await self._create_job(kube, spec, run.namespace)
        except BaseException:
            self._runs.pop(spec.run_id, None)
            raise
        # From here on the Job exists: the run stays tracked, and a failure ends it instead of raising.
        # The start deadline is armed first, so even a start cancelled half-way is ended and collected.
        self._arm(run, self._settings.start_timeout)
        try:
            if spec.env:
                await kube.create(manifests.secret(spec, run.namespace, job))
                await kube.resume_job(run.namespace, run.name)
        except Exception as exc:
            message = exc.message if isinstance(exc, errors.KubegateError) else repr(exc)
            log.warning("start of %s failed after its Job was created: %s", spec.run_id, message)
            if self._exit(run, "error", message=f"could not start: {message}"):
                self._spawn(self._delete(run))

    async def _create_job(self, kube: KubeClient, spec: RunSpec, namespace: str, manifest: Obj | None = None) -> Obj:
        """The Job (suspended when a Secret must exist first), in a namespace whose policy is in place."""
        manifest = manifest or manifests.job(spec, namespace, ttl_seconds=self._settings.job_ttl_seconds,
                                             placement=self._placement, suspend=bool(spec.env))
        for attempt in (1, 2):
            await self.guard.ensure(namespace, spec.owner, manifests.label_value(spec.owner))
            try:
                return await kube.create(manifest)
            except (errors.NotFound, errors.Forbidden):
                # The namespace went (or is going) behind our back since it was verified: check it again, once.
                self.guard.forget(namespace)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _arm(self, run: _Run, seconds: float) -> None:
        """End ``run`` if its container has not started within ``seconds``."""
        if run.started or run.exited:
            return
        loop = asyncio.get_running_loop()
        run.start_deadline = loop.call_later(max(0.0, seconds), lambda: self._spawn(self._never_started(run)))

    async def _never_started(self, run: _Run) -> None:
        if run.started or run.exited:
            return
        try:
            events = await (await self._kube()).events(run.namespace, run.name)
        except errors.KubegateError as exc:
            log.warning("cannot read the events of %s: %s", run.run_id, exc.message)
            events = []
        why = status.start_failure(run.pod, events)
        seconds = round(self._settings.start_timeout)
        if self._exit(run, "error", message=f"did not start within {seconds}s: {why}"):
            await self._delete(run)

    def _run_of(self, obj: Obj) -> _Run | None:
        run_id = (obj["metadata"].get("annotations") or {}).get(manifests.RUN_ID_ANNOTATION)
        return self._runs.get(run_id) if run_id else None

    def _on_pod(self, kind: str, pod: Obj) -> None:
        run = self._run_of(pod)
        if run is None:
            return
        if kind != "DELETED" or run.pod is None or not status.terminated(run.pod):
            run.pod = pod
        if kind == "DELETED" or status.terminated(pod):
            run.settled.set()
        if (fatal := status.fatal_waiting(pod)) and self._exit(run, "error", message=fatal):
            self._spawn(self._delete(run))
        if status.has_started(pod):
            if not run.started and not run.exited:  # never "started" after "exited"
                run.started = True
                if run.start_deadline is not None:
                    run.start_deadline.cancel()
                self._emit(run.run_id, "started")
            if run.copier is None:
                run.copier = self._spawn(self._copy_logs(run, pod["metadata"]["name"]))
        if run.workload and run.started and not run.ready and not run.exited and pod_ready(pod):
            run.ready = True  # a workload's agent is its container: exec and its port work from here
            self._emit(run.run_id, "ready")

    def _on_job(self, kind: str, job: Obj) -> None:
        run = self._run_of(job)
        if run is None:
            return
        run.seen = True
        end = status.job_end(job)
        if end is not None and not run.finishing:
            run.finishing = True
            self._spawn(self._finish(run, end))
        elif end is None and kind == "DELETED":
            self._exit(run, "lost", message="the Job was deleted outside kubegate")

    def _relisted(self, jobs: list[Obj]) -> None:
        present = {(job["metadata"].get("annotations") or {}).get(manifests.RUN_ID_ANNOTATION) for job in jobs}
        for run in list(self._runs.values()):
            if run.seen and not run.finishing and run.run_id not in present:
                self._exit(run, "lost", message="the Job disappeared while the watch was interrupted")

    async def _finish(self, run: _Run, end: status.JobEnd) -> None:
        if run.pod is None:
            await self._load_pod(run)
        if not run.settled.is_set() and run.pod is not None:
            try:
                await asyncio.wait_for(run.settled.wait(), SETTLE_SECONDS)
            except TimeoutError:
                pass
        if run.copier is not None:
            try:
                await asyncio.wait_for(asyncio.shield(run.copier), DRAIN_SECONDS)
            except TimeoutError:
                log.warning("log copy of %s did not finish in time", run.run_id)
        result = status.outcome(end, run.pod)
        output = result.output or last_line(read_tail(run.log.path, 16 * OUTPUT_LIMIT))
        self._exit(run, result.reason, code=result.exit_code, output=output, message=result.message)

    async def _load_pod(self, run: _Run) -> None:
        """Fetch the Pod of a run whose Job ended before the Pod watch said anything about it."""
        kube = await self._kube()
        try:
            pods, _ = await kube.list("pods", f"{manifests.RUN_LABEL}={manifests.label_value(run.run_id)}")
        except errors.KubegateError as exc:
            log.warning("cannot read the pod of %s: %s", run.run_id, exc.message)
            return
        for pod in pods:
            self._on_pod("ADDED", pod)

    async def _copy_logs(self, run: _Run, pod: str) -> None:
        kube = await self._kube()
        place = run.log.path.with_name("cursor")
        cursor = LogCursor.load(place)
        while True:
            final = run.settled.is_set()
            cursor.begin()
            try:
                async for chunk in kube.pod_log(run.namespace, pod, manifests.CONTAINER, follow=not final,
                                                since_seconds=cursor.since_seconds()):
                    if data := cursor.feed(chunk):
                        await run.log.append(data)
                        cursor.save(place)
                if rest := cursor.end(final):
                    await run.log.append(rest)
                    cursor.save(place)
            except errors.NotFound:
                break
            except errors.KubegateError as exc:
                log.info("log stream of %s broke: %s", run.run_id, exc.message)
            if final or run.exited and not run.finishing:
                break
            try:
                await asyncio.wait_for(run.settled.wait(), RECONNECT_SECONDS)
            except TimeoutError:
                pass
        await run.log.finish()

    def _collect_later(self, run: _Run) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(COLLECT_DELAY, lambda: None if run.removed else self._spawn(self._delete(run)))

    async def _delete(self, run: _Run) -> None:
        await self._delete_job(run.run_id, run.namespace, run.name)

    async def _delete_job(self, run_id: str, namespace: str, name: str) -> None:
        """Delete a run's Job (its Pod and Secret go with it), retrying a few times if the API is away."""
        kube = await self._kube()
        for delay in (*DELETE_RETRIES, None):
            try:
                await kube.delete_job(namespace, name)
                return
            except errors.KubegateError as exc:
                if delay is None:
                    log.warning("cannot delete the Job of %s (%s); the next recovery sweeps it", run_id, exc.message)
                    return
                await asyncio.sleep(delay)

    async def _find(self, run_id: str) -> _Run | None:
        """A run this process does not track (e.g. before ``recover``), found by its label."""
        kube = await self._kube()
        jobs, _ = await kube.list("jobs", f"{manifests.RUN_LABEL}={manifests.label_value(run_id)}")
        for job in jobs:
            meta = job["metadata"]
            if (meta.get("annotations") or {}).get(manifests.RUN_ID_ANNOTATION) == run_id:
                return _Run(run_id, meta["namespace"], meta["name"], RunLog(self._log_path(run_id)), exited=True)
        return None

    async def cancel(self, run_id: str) -> None:
        run = self._runs.get(run_id) or await self._find(run_id)
        if run is None:
            return
        cancelled = self._exit(run, "cancelled", message="cancelled")
        if cancelled or run.run_id not in self._runs:
            await self._delete(run)

    async def remove(self, run_id: str) -> None:
        run = self._runs.pop(run_id, None) or await self._find(run_id)
        if run is not None:
            run.exited = run.removed = True
            if run.copier is not None:
                run.copier.cancel()
            await self._delete(run)
        RunLog(self._log_path(run_id)).remove()

    def read_logs(self, run_id: str, *, tail: int) -> str:
        try:
            return read_tail(self._log_path(run_id), tail)
        except errors.BadRequest:
            return ""  # no run has such an id

    async def events(self) -> AsyncIterator[RunEvent]:
        await self._kube()
        while True:
            event = await self._queue.get()
            yield event
            # The consumer asks for the next event only once it recorded this one: the Job can go. Not at
            # once: the engine is starting the next step right now, and the cascade would compete with it.
            if event.kind == "exited" and (run := self._runs.get(event.run_id)) is not None:
                self._collect_later(run)

    async def recover(self, active: Sequence[RunSpec]) -> None:
        kube = await self._kube()
        runs = [self._runs.get(spec.run_id) or self._register(spec) for spec in active]
        pods, _ = await kube.list("pods", manifests.SELECTOR)
        jobs, _ = await kube.list("jobs", manifests.SELECTOR)
        for pod in pods:
            self._on_pod("ADDED", pod)
        by_run = {_run_id(job): job for job in jobs}
        for run in runs:
            if (job := by_run.get(run.run_id)) is not None:
                self._on_job("ADDED", job)
                self._arm(run, self._settings.start_timeout - _age(job))
            elif not run.finishing:
                self._exit(run, "lost", message="the Job no longer exists in the cluster")
        # A finished Job of a run the store no longer calls active had its result recorded: collect it.
        for run_id, job in by_run.items():
            if run_id and run_id not in self._runs and status.job_end(job) is not None:
                meta = job["metadata"]
                self._spawn(self._delete_job(run_id, meta["namespace"], meta["name"]))

    async def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.close()
            self._client = None


def _ignore(_: list[Obj]) -> None:
    pass


def _run_id(obj: Obj) -> str | None:
    run_id: str | None = (obj["metadata"].get("annotations") or {}).get(manifests.RUN_ID_ANNOTATION)
    return run_id


def _age(obj: Obj) -> float:
    """Seconds since ``obj`` was created."""
    created = datetime.strptime(obj["metadata"]["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return (datetime.now(UTC) - created).total_seconds()
