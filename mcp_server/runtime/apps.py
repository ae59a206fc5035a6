"""The runtime side of deployments: replicated long-running apps, declared whole and kept so.

A runtime that runs apps exposes an ``Apps`` as its ``apps`` attribute (as it exposes
``workloads``). The engine never steps an app through its life: it ``apply``s the whole desired
``AppSpec`` (create, scale and update are all ``apply``), and the runtime converges on it and
reports what it sees as ``AppEvent``s. This maps one to one onto Kubernetes (an ``apps/v1``
Deployment + Service + Ingress, status from watches on the Deployment and its pods) and onto the
local runtime (one supervised process per replica under the detached supervisor).

Rules every implementation keeps:

- ``apply`` is idempotent and declarative: same spec, no change; another ``replicas`` scales;
  another ``revision`` (image, command, env, port or health path changed) rolls the replicas
  over to the new spec, replacing an old replica only once a new one is ready when
  ``replicas >= 2`` (no gap in service).
- Status comes from events (pidfds, health answers, watches), never from a polling loop; every
  change of an app's ``AppStatus`` is emitted once on ``events()``; ``status`` answers from the
  same state without waiting.
- ``phase`` is ``Ready`` only while every desired replica of the current revision answers the
  health path with 2xx/3xx; ``Error`` (with ``last_error``: the last lines of the failing
  replica's output, or the cluster's reason such as CrashLoopBackOff) once a replica keeps
  failing; a replica is still restarted with backoff while in ``Error``, and the app becomes
  ``Ready`` again if it recovers.
- After a gateway restart the engine calls ``recover`` with every spec it believes exists; the
  runtime re-attaches to what still runs, re-creates what vanished, deletes apps it runs that
  are not in the list, and emits each app's current status.
- Exactly one process keeps an app (``apply``, ``delete``, ``recover``, ``events``): the engine
  leader, or on one machine the holder of the recovery lease. Any process may read one
  (``endpoints``, ``read_logs``, ``metrics``) by its ``AppRef``, which carries what the keeper
  last recorded: the keeper answers from what it holds, any other from what the runtime shares
  (the replicas' run dirs in the data dir locally, the cluster's objects on Kubernetes).
- Secret env values (``secret_env``) reach the app only; they are never logged or put where
  another tenant could read them (a Secret object on Kubernetes, a 0600 file locally).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from mcp_server.runtime.base import Endpoint, Runtime

AppPhase = Literal["Pending", "Provisioning", "Ready", "Error"]
"""``Pending``: accepted, nothing runs yet; ``Provisioning``: replicas starting or rolling."""


@dataclass(frozen=True, slots=True)
class AppResources:
    """Kubernetes quantities, as templates write them; the local runtime maps them to its limits."""

    cpu_request: str = "100m"
    cpu_limit: str = "500m"
    memory_request: str = "128Mi"
    memory_limit: str = "512Mi"


@dataclass(frozen=True, slots=True)
class AppSpec:
    """The whole desired state of one deployment's replicas."""

    name: str
    """The deployment's name: a DNS label unique in the gateway (objects and the host use it)."""
    owner: str
    image: str
    port: int
    command: Sequence[str] = ()
    """Empty: the image's entrypoint. Locally, what runs (required there)."""
    env: Mapping[str, str] = field(default_factory=dict)
    secret_env: Mapping[str, str] = field(default_factory=dict)
    health_path: str = "/"
    replicas: int = 1
    resources: AppResources = field(default_factory=AppResources)
    revision: int = 1
    """Bumped by the engine on every change but ``replicas``; a new revision rolls the replicas."""
    network: bool = False
    """Outbound network for the replicas (never to the host's own addresses locally)."""
    public: bool = True
    """Public apps get an Ingress on ``host``; internal ones are reached only through the gateway."""
    host: str | None = None
    """``{name}.{KUBEGATE_APPS_DOMAIN}``."""
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    replica: str
    """Stable id within the app: ``"0"``, ``"1"``... locally, the pod's name on Kubernetes."""
    ready: bool
    restarts: int = 0
    last_error: str | None = None
    endpoint: Endpoint | None = None
    """Where the proxy reaches this replica's port; None while it cannot be reached."""
    revision: int = 1
    started: datetime | None = None
    """When the replica's current process (container) started; None while it is not running."""


@dataclass(frozen=True, slots=True)
class AppIngress:
    """An ingress the runtime created for the app (the local runtime's proxy host counts as one)."""

    name: str
    host: str


@dataclass(frozen=True, slots=True)
class AppStatus:
    name: str
    phase: AppPhase
    replicas: int
    """Desired replicas."""
    ready_replicas: int = 0
    revision: int = 1
    last_error: str | None = None
    replica_status: Sequence[ReplicaStatus] = ()
    ingresses: Sequence[AppIngress] = ()


def parse_time(text: object) -> datetime | None:
    """An RFC 3339 time as runtimes report it (``...Z``); None for anything else."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class AppRef:
    """An app as its keeper last recorded it (the store's row): what any process reads it by."""

    name: str
    owner: str
    replicas: Sequence[ReplicaStatus] = ()
    """The replicas as last recorded (``replica``, ``revision``, ``ready``, ``restarts``); no endpoints."""


@dataclass(frozen=True, slots=True)
class AppEvent:
    """An app's status changed (``status``), or it is gone after ``delete`` (``status`` None)."""

    name: str
    at: datetime
    status: AppStatus | None


@dataclass(frozen=True, slots=True)
class LogLine:
    at: datetime
    replica: str
    text: str


@dataclass(frozen=True, slots=True)
class ReplicaMetrics:
    replica: str
    restarts: int
    cpu_seconds: float | None = None
    """CPU time used so far (local: the process tree's user + system)."""
    cpu_cores: float | None = None
    """Current CPU rate (Kubernetes: ``metrics.k8s.io``)."""
    memory_bytes: int | None = None
    """Resident memory (local: RSS of the process tree; Kubernetes: working set)."""


@dataclass(frozen=True, slots=True)
class AppMetrics:
    """Per-replica usage; ``available`` False (with ``reason``) when the runtime cannot measure it,
    in which case ``replicas`` still carry restarts."""

    name: str
    available: bool
    replicas: Sequence[ReplicaMetrics] = ()
    reason: str | None = None


@runtime_checkable
class Apps(Protocol):
    """Replicated long-running apps on a runtime (see the module docstring for the rules)."""

    async def apply(self, spec: AppSpec) -> None:
        """Create the app or converge it on ``spec`` (scale, rolling update); returns once accepted."""

    async def delete(self, name: str) -> None:
        """Stop and remove everything of the app; idempotent. Ends with ``AppEvent(status=None)``."""

    def status(self, name: str) -> AppStatus | None:
        """The app's current status without waiting; None for an unknown app."""
        ...

    async def read_logs(self, app: AppRef, *, tail: int, since: datetime | None = None,
                        replica: str | None = None) -> Sequence[LogLine]:
        """The last ``tail`` lines (of all replicas, in time order, or of ``replica``), at or after ``since``."""
        ...

    async def metrics(self, app: AppRef) -> AppMetrics:
        """Usage per replica now; never fails because measuring is impossible (``available`` False)."""
        ...

    async def endpoints(self, app: AppRef) -> Sequence[Endpoint]:
        """Where the proxy reaches the app's ready replicas (one Service endpoint on Kubernetes)."""
        ...

    def events(self) -> AsyncIterator[AppEvent]:
        """The single stream of status changes for all apps; consumed by one engine."""
        ...

    async def recover(self, specs: Sequence[AppSpec]) -> None:
        """After a restart: re-attach to ``specs``, re-create vanished ones, delete strays, emit statuses."""

    async def close(self) -> None:
        """Stop watching; apps keep running."""


def apps_of(runtime: Runtime) -> Apps | None:
    """The runtime's apps, if it runs them."""
    found = getattr(runtime, "apps", None)
    return found if isinstance(found, Apps) else None
