"""``Apps`` on this machine: each replica is a long-lived workload whose agent supervises the app.

A replica is run ``app_{name}_{revision}_{index}`` started through ``LocalWorkloads`` (so it has
the sandbox's isolation, the detached shim and the port bridge); its agent runs the app, restarts
it with backoff and pushes every change of its state over a ``watch`` connection, which is how
this class learns of crashes and readiness (no polling). Restart counts live in the agent, so
they survive a gateway restart; ``recover`` re-attaches to the replicas' shims and re-opens the
watches. A replica whose whole workload dies (its agent killed) is started again.

Each app has one converging task, woken by ``apply`` and by every replica change: it starts
missing replicas, rolls a new revision in one index at a time (the old replica goes once the new
one is ready, so two or more replicas never leave a gap) and removes replicas no longer wanted.

A process that does not keep an app (a follower replica, a ``kubegate stdio`` beside the gateway)
still reads it, from the shared data dir: the replicas' logs and agents by their run dirs, and
the ready ones' port bridges by the replicas the keeper recorded (``AppRef``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import marshal
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mcp_server.errors import KubegateError
from mcp_server.models.templates import quantity_value
from mcp_server.runtime.apps import (
    AppEvent,
    AppIngress,
    AppMetrics,
    AppPhase,
    AppRef,
    AppResources,
    AppSpec,
    AppStatus,
    LogLine,
    ReplicaMetrics,
    ReplicaStatus,
    parse_time,
)
from mcp_server.runtime.base import SIZES, Endpoint, RunEvent, RunSpec, SizeName
from mcp_server.runtime.workload import WORKLOAD_LABEL

if TYPE_CHECKING:
    from mcp_server.runtime.local import LocalRuntime

logger = logging.getLogger(__name__)

PREFIX = "app_"
_FOREVER = 100 * 365 * 86400.0
"""An app's workload has no deadline; the shim still needs one."""
_LOG_BYTES = 1 << 20
"""Bytes of each replica's log searched for ``read_logs``."""
_RESTART_DELAY = 1.0
_DRAIN_SECONDS = 0.5
"""How long a replica that served is kept after it leaves the endpoints, before it is stopped."""


def run_id(name: str, revision: int, index: int) -> str:
    return f"{PREFIX}{name}_{revision}_{index}"


@dataclass(eq=False)
class _Replica:
    run_id: str
    index: int
    revision: int
    state: dict[str, Any] = field(default_factory=dict)
    watcher: asyncio.Task[None] | None = None
    removing: bool = False
    lost: int = 0
    """Times its whole workload died and was started again (added to the agent's restarts)."""

    @property
    def ready(self) -> bool:
        return bool(self.state.get("ready")) and not self.removing


@dataclass(eq=False)
class _App:
    spec: AppSpec
    replicas: dict[str, _Replica] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    last: AppStatus | None = None
    started: bool = False


class LocalApps:
    """``Apps`` on the ``LocalRuntime`` (see the module docstring)."""

    def __init__(self, runtime: LocalRuntime) -> None:
        self._runtime = runtime
        self._workloads = runtime.workloads
        self._apps: dict[str, _App] = {}
        self._events: asyncio.Queue[AppEvent] = asyncio.Queue()
        self._rr: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def apply(self, spec: AppSpec) -> None:
        app = self._apps.get(spec.name)
        if app is None:
            app = self._apps[spec.name] = _App(spec)
            await self._adopt(app)
            app.task = asyncio.get_running_loop().create_task(self._converge_forever(app), name=f"app-{spec.name}")
        app.spec = spec
        app.wake.set()
        self._publish(app)

    async def delete(self, name: str) -> None:
        app = self._apps.pop(name, None)
        if app is not None and app.task is not None:
            app.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await app.task
        replicas = list(app.replicas.values()) if app else []
        known = {r.run_id for r in replicas}
        await asyncio.gather(*(self._remove(r) for r in replicas))
        for stray in self._runtime.run_ids(f"{PREFIX}{name}_"):
            if stray not in known:
                await self._runtime.remove(stray)
        self._events.put_nowait(AppEvent(name, _now(), None))

    def status(self, name: str) -> AppStatus | None:
        app = self._apps.get(name)
        return self._status(app) if app else None

    async def endpoints(self, ref: AppRef) -> Sequence[Endpoint]:
        app = self._apps.get(ref.name)
        if app is not None:
            ready = [self._workloads.endpoint(r.run_id) for r in app.replicas.values() if r.ready]
        else:  # kept by another process: its record says which replicas are ready
            ready = [self._workloads.endpoint(run_id(ref.name, r.revision, int(r.replica)))
                     for r in ref.replicas if r.ready and r.replica.isdigit()]
        if len(ready) > 1:  # round robin: the proxy takes the first
            turn = self._rr[ref.name] = (self._rr.get(ref.name, -1) + 1) % len(ready)
            ready = ready[turn:] + ready[:turn]
        return ready

    async def read_logs(self, ref: AppRef, *, tail: int, since: datetime | None = None,
                        replica: str | None = None) -> Sequence[LogLine]:
        lines: list[LogLine] = []
        for rid, index in self._run_ids(ref.name):
            if replica is not None and str(index) != replica:
                continue
            text = self._runtime.read_logs(rid, tail=_LOG_BYTES)
            lines += [line for line in _parse_log(text, str(index)) if since is None or line.at >= since]
        lines.sort(key=lambda line: line.at)
        return lines[-tail:] if tail > 0 else []

    def _run_ids(self, name: str) -> list[tuple[str, int]]:
        """The app's replica runs with their indexes: those kept here, else those in the data dir."""
        app = self._apps.get(name)
        if app is not None:
            return [(r.run_id, r.index) for r in app.replicas.values()]
        return [(rid, int(rid.rsplit("_", 1)[1])) for rid in self._runtime.run_ids(f"{PREFIX}{name}_")]

    async def metrics(self, ref: AppRef) -> AppMetrics:
        app = self._apps.get(ref.name)
        if app is not None:
            replicas = [(r.run_id, str(r.index), self._restarts(r))
                        for r in sorted(app.replicas.values(), key=lambda r: r.index)]
        elif ref.replicas:  # kept by another process: the replicas and restarts it recorded
            replicas = [(run_id(ref.name, r.revision, int(r.replica)), r.replica, r.restarts)
                        for r in ref.replicas if r.replica.isdigit()]
        else:
            return AppMetrics(ref.name, available=False, reason="no replica has started yet")
        return AppMetrics(ref.name, available=True,
                          replicas=[await self._usage(rid, replica, restarts) for rid, replica, restarts in replicas])

    async def _usage(self, rid: str, replica: str, restarts: int) -> ReplicaMetrics:
        try:
            stats = await self._workloads.stats(rid, app_only=True)
        except (KubegateError, OSError, ValueError):
            return ReplicaMetrics(replica, restarts)
        return ReplicaMetrics(replica, restarts, cpu_seconds=stats.cpu_seconds, memory_bytes=stats.memory_bytes)

    async def events(self) -> AsyncIterator[AppEvent]:
        while True:
            yield await self._events.get()

    async def recover(self, specs: Sequence[AppSpec]) -> None:
        wanted = {spec.name for spec in specs}
        for stray in self._runtime.run_ids(PREFIX):
            if stray[len(PREFIX):].rsplit("_", 2)[0] not in wanted:
                await self._runtime.remove(stray)
        for spec in specs:
            await self.apply(spec)

    async def _adopt(self, app: _App) -> None:
        """Take over the replicas of ``app`` already on disk (started before a restart, or by another process)."""
        found = []
        for rid in self._runtime.run_ids(f"{PREFIX}{app.spec.name}_"):
            revision, index = (int(part) for part in rid.rsplit("_", 2)[1:])
            app.replicas[rid] = _Replica(rid, index, revision)
            found.append(_replica_spec(app.spec, rid))
        await self._runtime.recover(found)

    async def close(self) -> None:
        for app in self._apps.values():
            for task in [app.task, *(r.watcher for r in app.replicas.values()), *self._tasks]:
                if task is not None:
                    task.cancel()

    def on_run_event(self, event: RunEvent) -> None:
        """The runtime's events for replica runs: ``ready`` opens the watch, ``exited`` restarts it."""
        found = self._find(event.run_id)
        if found is None:
            return
        app, replica = found
        if event.kind == "ready" and replica.watcher is None:
            replica.watcher = asyncio.get_running_loop().create_task(self._watch(app, replica))
        elif event.kind == "exited" and event.reason == "cancelled" and not replica.removing:
            # Stopped on purpose, by another process keeping the same app: it is no longer wanted.
            del app.replicas[replica.run_id]
            app.wake.set()
            self._publish(app)
        elif event.kind == "exited" and not replica.removing:
            lines = [line for line in (event.output or event.message or "").splitlines() if line.strip()]
            # The next agent counts from 0: keep this one's restarts, plus this end.
            replica.lost += 1 + int(replica.state.get("restarts", 0))
            replica.state = {"ready": False, "lastError": "\n".join(
                ["the replica's supervisor ended (" + (event.reason or "lost") + ")", *lines[-5:]])}
            replica.removing = True
            task = asyncio.get_running_loop().create_task(self._restart(app, replica))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            self._publish(app)

    async def _restart(self, app: _App, replica: _Replica) -> None:
        await self._remove_run(replica.run_id)
        await asyncio.sleep(_RESTART_DELAY)  # a workload that dies at once must not spin
        if self._apps.get(app.spec.name) is app:
            replica.removing = False
            replica.watcher = None
            await self._start(app, replica)

    def _find(self, rid: str) -> tuple[_App, _Replica] | None:
        name = rid[len(PREFIX):].rsplit("_", 2)[0]
        app = self._apps.get(name)
        replica = app.replicas.get(rid) if app else None
        return (app, replica) if app and replica else None

    async def _watch(self, app: _App, replica: _Replica) -> None:
        try:
            async for state in self._workloads.watch(replica.run_id):
                replica.state = state
                app.wake.set()
                self._publish(app)
        except KubegateError as exc:
            logger.warning("cannot watch replica %s: %s", replica.run_id, exc)
        finally:
            replica.watcher = None

    async def _converge_forever(self, app: _App) -> None:
        while True:
            app.wake.clear()
            try:
                await self._converge(app)
            except Exception:
                logger.exception("converging app %s failed; retrying on the next change", app.spec.name)
            await app.wake.wait()

    async def _converge(self, app: _App) -> None:
        spec = app.spec
        for index in range(spec.replicas):
            rid = run_id(spec.name, spec.revision, index)
            if rid not in app.replicas:
                replica = app.replicas[rid] = _Replica(rid, index, spec.revision)
                await self._start(app, replica)
        for index in range(spec.replicas):
            new = app.replicas.get(run_id(spec.name, spec.revision, index))
            if new is None:
                return  # it could not start; retried, which wakes this again
            olds = [r for r in app.replicas.values() if r.index == index and r.revision != spec.revision]
            if olds and not new.ready:
                return  # woken again when the new one changes
            for old in olds:
                await self._remove(old)
        for r in [r for r in app.replicas.values() if r.index >= spec.replicas]:
            await self._remove(r)
        self._publish(app)

    async def _start(self, app: _App, replica: _Replica) -> None:
        spec = _replica_spec(app.spec, replica.run_id)
        exists = self._runtime.run_dir(replica.run_id).path.exists
        try:
            if exists():  # another process keeping this app started it first: follow that one
                await self._runtime.recover([spec])
            else:
                await self._workloads.start(spec, port=app.spec.port)
        except KubegateError as exc:
            if exists():
                await self._runtime.recover([spec])
            else:
                replica.state = {"ready": False, "failing": True, "lastError": f"cannot start the replica: {exc}"}
                asyncio.get_running_loop().call_later(_RESTART_DELAY, self._retry, app, replica)
        self._publish(app)

    def _retry(self, app: _App, replica: _Replica) -> None:
        """Try a replica that could not start again (its slot is free once it leaves ``replicas``)."""
        if app.replicas.get(replica.run_id) is replica and replica.watcher is None and not replica.removing:
            del app.replicas[replica.run_id]
            app.wake.set()

    async def _remove(self, replica: _Replica) -> None:
        serving = replica.ready
        replica.removing = True  # out of ``endpoints`` from now on
        if serving:  # let requests already sent to it finish before it is stopped
            await asyncio.sleep(_DRAIN_SECONDS)
        if replica.watcher is not None:
            replica.watcher.cancel()
        await self._remove_run(replica.run_id)
        found = self._find(replica.run_id)
        if found is not None:
            del found[0].replicas[replica.run_id]
            self._publish(found[0])

    async def _remove_run(self, rid: str) -> None:
        """Remove a replica's run; again while its cgroups still hold processes being killed (a supervisor
        that was SIGKILLed could not end them itself), so the replica's id is free to start again."""
        delay = 0.05
        for _ in range(12):
            try:
                await self._runtime.remove(rid)
                return
            except KubegateError as exc:
                logger.info("removing replica %s: %s; again in %.2fs", rid, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        logger.warning("replica %s could not be removed completely", rid)

    def _restarts(self, replica: _Replica) -> int:
        return int(replica.state.get("restarts", 0)) + replica.lost

    def _status(self, app: _App) -> AppStatus:
        spec = app.spec
        current = [r for r in app.replicas.values() if r.revision == spec.revision and r.index < spec.replicas]
        ready = sum(r.ready for r in current)
        failing = next((r for r in sorted(current, key=lambda r: r.index) if r.state.get("failing")), None)
        phase: AppPhase
        if failing is not None:
            phase = "Error"
        elif ready == spec.replicas and len(app.replicas) == spec.replicas:
            phase = "Ready"
        elif not app.replicas and not app.started:
            phase = "Pending"
        else:
            phase = "Provisioning"
        app.started = app.started or bool(app.replicas)
        errors = [r.state.get("lastError") for r in current if r.state.get("lastError")]
        last_error = (failing.state.get("lastError") if failing else None) or (errors[0] if errors else None)
        replicas = [ReplicaStatus(str(r.index), r.ready, self._restarts(r), r.state.get("lastError"),
                                  self._workloads.endpoint(r.run_id) if r.ready else None, r.revision,
                                  parse_time(r.state.get("started")))
                    for r in sorted(app.replicas.values(), key=lambda r: (r.index, r.revision))]
        ingresses = [AppIngress(spec.name, spec.host)] if spec.host else []
        return AppStatus(spec.name, phase, spec.replicas, ready, spec.revision, last_error, replicas, ingresses)

    def _publish(self, app: _App) -> None:
        if self._apps.get(app.spec.name) is not app:
            return
        status = self._status(app)
        if status != app.last:
            app.last = status
            self._events.put_nowait(AppEvent(app.spec.name, _now(), status))


def _replica_spec(spec: AppSpec, rid: str) -> RunSpec:
    # marshal, which the agent reads without an import; it unmarshals only what the gateway wrote.
    config = marshal.dumps({"command": list(spec.command), "port": spec.port, "health": spec.health_path}).hex()
    env = {**spec.env, **spec.secret_env, "PORT": str(spec.port), "KUBEGATE_APP": config}
    return RunSpec(run_id=rid, owner=spec.owner, image=spec.image, command=list(spec.command), env=env,
                   timeout_seconds=_FOREVER, network=spec.network, size=size_for(spec.resources),
                   labels={**spec.labels, "app": spec.name, WORKLOAD_LABEL: "1"})


def size_for(resources: AppResources) -> SizeName:
    """The smallest local size that holds the app's CPU and memory limits (the largest if none does)."""
    cpu, memory = quantity_value(resources.cpu_limit) * 1000, quantity_value(resources.memory_limit) / 2**20
    fitting = [s.name for s in SIZES.values() if s.cpu_millis >= cpu and s.memory_mib >= memory]
    return fitting[0] if fitting else list(SIZES)[-1]


def _parse_log(text: str, replica: str) -> list[LogLine]:
    """The app's timestamped lines (what the agent wrote); anything else in the log is skipped."""
    lines = []
    for raw in text.splitlines():
        stamp, _, rest = raw.partition(" ")
        if len(stamp) == 24 and stamp.endswith("Z"):
            try:
                at = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
            except ValueError:
                continue
            lines.append(LogLine(at, replica, rest))
    return lines


def _now() -> datetime:
    return datetime.now(UTC)
