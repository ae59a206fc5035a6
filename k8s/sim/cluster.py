"""``FakeCluster``: the fake API server, Job controller and kubelet, served over real HTTP on 127.0.0.1.

Use it from tests (``async with FakeCluster() as cluster``) or standalone (``python -m k8s.sim``).
The official client reaches it through the kubeconfig it writes; nothing in the code under
test knows it is not talking to a real cluster.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import shutil
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import uvicorn

from k8s.sim import admission, services
from k8s.sim.api import Api, Audit
from k8s.sim.controller import JobController, default_job
from k8s.sim.deployments import DeploymentController
from k8s.sim.podnet import PodNetwork
from k8s.sim.policies import AdmissionPolicies
from k8s.sim.proxy import ServiceProxy
from k8s.sim.restarts import RestartingKubelet
from k8s.sim.store import InvalidWrite, Obj, Store, now

log = logging.getLogger(__name__)
CLOSE_SECONDS = 30.0


def _pending_stacks() -> str:
    """Where every other task of this loop waits: what a close that did not end was waiting on."""
    out = io.StringIO()
    for task in asyncio.all_tasks():
        if task is not asyncio.current_task():
            task.print_stack(limit=8, file=out)
    return out.getvalue()


def kubeconfig(server: str) -> dict[str, object]:
    """A kubeconfig for an unauthenticated plain-HTTP server."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kubegate-sim", "cluster": {"server": server}}],
        "users": [{"name": "kubegate-sim", "user": {}}],
        "contexts": [{"name": "kubegate-sim", "context": {"cluster": "kubegate-sim", "user": "kubegate-sim"}}],
        "current-context": "kubegate-sim",
    }


class FakeCluster:
    """A one-node cluster in this process; ``invalid_writes`` and ``audit`` are there for assertions."""

    def __init__(self, *, port: int = 0, kubeconfig_path: Path | None = None, history: int = 10_000,
                 validate: bool = True, pod_network: bool | None = None) -> None:
        self._port = port
        self._workdir = Path(tempfile.mkdtemp(prefix="kubegate-sim-"))
        self.kubeconfig_path = kubeconfig_path or self._workdir / "kubeconfig"
        self.store = Store(history=history, validate=validate)
        self.store.defaulters["jobs"] = default_job
        self.proxy = ServiceProxy(self.store)
        self.store.defaulters["services"] = services.defaulter(self.proxy.allocate)
        self.audit: Audit = set()
        # A network namespace and address per Pod when it can make them (root); ``pod_network`` forces it.
        self.kubelet = RestartingKubelet(self.store, self._workdir, PodNetwork(pod_network))
        self.controller = JobController(self.store, self.kubelet)
        self.deployments = DeploymentController(self.store)
        self.runtime_classes: set[str] = {"gvisor"}
        self.store.admission += [admission.quota(self.store), admission.runtime_classes(self.runtime_classes)]
        self._api: Api | None = None
        self._server: uvicorn.Server | None = None
        self._serving: asyncio.Task[None] | None = None
        self.url = ""

    @property
    def invalid_writes(self) -> list[InvalidWrite]:
        return self.store.invalid_writes

    async def __aenter__(self) -> FakeCluster:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._port))
        sock.listen(128)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self._api = Api(self.store, self.kubelet, self.audit)
        app = self._api.app()
        config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False,
                                timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        # Connections queue on the already-listening socket, so callers may connect at once.
        self._serving = asyncio.get_running_loop().create_task(self._server.serve(sockets=[sock]))
        self.kubeconfig_path.write_text(json.dumps(kubeconfig(self.url), indent=2))
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        # Bounded: twice in CI a close never returned (after a Deployment whose health path never answered),
        # cause not found yet; a test run must not hang on its fake cluster's teardown.
        try:
            async with asyncio.timeout(CLOSE_SECONDS):
                await self._close()
        except TimeoutError:
            self.kubelet.kill()  # whatever started meanwhile does not outlive the cluster
            log.warning("the fake cluster did not close within %.0f s; still waiting:\n%s", CLOSE_SECONDS,
                        _pending_stacks())
        shutil.rmtree(self._workdir, ignore_errors=True)

    async def _close(self) -> None:
        if self._api is not None:
            self._api.watches_open.set()
        self.store.drop_watches()
        self.kubelet.kill()
        await self.controller.close()
        self.deployments.close()
        await self.kubelet.close()
        await self.proxy.close()
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            await self._serving

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Return once ``predicate()`` holds, re-checking after every write to the store; else ``TimeoutError``."""
        changed = asyncio.Event()

        def wake(_resource: str, _kind: str, _obj: Obj) -> None:
            changed.set()
        self.store.listeners.append(wake)
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    await changed.wait()
                    changed.clear()
        finally:
            self.store.listeners.remove(wake)

    def objects(self, resource: str, selector: str | None = None) -> list[Obj]:
        """Every stored object of ``resource`` (all namespaces) matching ``selector``."""
        return self.store.list(resource, None, selector)

    def drop_watches(self) -> int:
        """Close every open watch stream; returns how many there were."""
        return self.store.drop_watches()

    def hold_watches(self, held: bool = True) -> None:
        """While held, new watch requests wait (as during an API server outage); ``False`` lets them through."""
        assert self._api is not None
        if held:
            self._api.watches_open.clear()
        else:
            self._api.watches_open.set()

    def enforce(self, documents: list[Obj], user: str) -> AdmissionPolicies:
        """Apply these ValidatingAdmissionPolicies (and bindings) to every HTTP write, as made by ``user``."""
        assert self._api is not None
        self._api.policies = AdmissionPolicies(documents, user)
        return self._api.policies

    def serve_metrics(self, served: bool = True) -> None:
        """Serve ``metrics.k8s.io`` (as with metrics-server installed) or answer it 404 (without)."""
        assert self._api is not None
        self._api.metrics_served = served

    def evict(self, namespace: str, name: str, reason: str = "EvictionByEvictionAPI") -> None:
        """Evict a Pod as the Eviction API or a preempting scheduler does: DisruptionTarget, graceful deletion."""
        def disrupt(pod: Obj) -> None:
            conditions = pod.setdefault("status", {}).setdefault("conditions", [])
            conditions.append({"type": "DisruptionTarget", "status": "True", "reason": reason,
                               "message": "Eviction API: evicting", "lastTransitionTime": now()})
        self.store.update("pods", namespace, name, disrupt)
        self.store.delete("pods", namespace, name, grace=1.0)

    def rotate_logs(self, namespace: str, name: str) -> None:
        """Rotate the Pod's container logs: later reads start after this point, open follows end."""
        self.kubelet.rotate(self.store.get("pods", namespace, name)["metadata"]["uid"])

    def service_address(self, namespace: str, name: str, port: int) -> tuple[str, int]:
        """Where ``{name}.{namespace}.svc:{port}`` is reached from this machine: ``clusterIP:port`` (``proxy``)."""
        spec = self.store.get("services", namespace, name)["spec"]
        if not any(int(entry["port"]) == port for entry in spec.get("ports") or []):
            raise LookupError(f"service {namespace}/{name} has no port {port}")
        return str(spec["clusterIP"]), port

    def compact(self) -> None:
        """Expire the watch history so resuming from an old resourceVersion gets 410 Gone."""
        self.store.compact()
